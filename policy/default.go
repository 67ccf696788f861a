package policy

import _ "embed"

//go:embed default.yaml
var defaultPolicy []byte

// DefaultFile is the name the embedded default policy goes by in messages.
const DefaultFile = "embedded:default.yaml"

// DefaultSource returns the text of the embedded default policy.
func DefaultSource() []byte { return append([]byte(nil), defaultPolicy...) }

// Default compiles the embedded default policy.
func Default() (*Policy, error) {
	return Parse(DefaultFile, defaultPolicy, Options{})
}
