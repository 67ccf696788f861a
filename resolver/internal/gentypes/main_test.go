package main

import (
	"bytes"
	"os"
	"testing"
)

// TestTableIsCurrent fails when policy's type table and miekg/dns's have
// drifted apart, as after a miekg/dns upgrade: go generate ./policy mends it.
func TestTableIsCurrent(t *testing.T) {
	want, err := Source()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../../policy/types_table.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("policy/types_table.go is not what gentypes writes from miekg/dns: run go generate ./policy")
	}
}
