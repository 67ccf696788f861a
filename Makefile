# The one command that runs every test: vet, then the whole suite with the
# race detector (end-to-end tests included: they need dig).
.PHONY: test build bench fmt

test:
	go vet ./...
	go test -race -count=1 ./...

build:
	CGO_ENABLED=0 go build -trimpath -o typoguard ./cmd/typoguard

bench:
	go test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w .
