package upstream

// MuxSockets and MuxUses are the UDP pool's sizes, for tests.
const (
	MuxSockets = muxSockets
	MuxUses    = muxUses
)
