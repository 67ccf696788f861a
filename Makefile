# The one command that runs every test: vet, then the whole suite with the
# race detector, verbose so the log shows each end-to-end test (dig, Postfix)
# that ran.
.PHONY: test build bench fmt

test:
	go vet ./...
	go test -race -count=1 -v ./...

build:
	CGO_ENABLED=0 go build -buildvcs=auto -trimpath -o typoguard ./cmd/typoguard

bench:
	go test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w .
