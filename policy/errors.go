package policy

import (
	"fmt"
	"strings"
)

// Position is a place in a policy or list file; Col is 0 where only the line
// is known (list files).
type Position struct {
	File string
	Line int
	Col  int
}

// String formats the position as file:line:col, or file:line without a column.
func (p Position) String() string {
	if p.Col > 0 {
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return p.File
}

// Error is one problem found in a policy file, at its position.
type Error struct {
	Pos Position
	Msg string
}

// Error formats the problem as "file:line:col: message".
func (e Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is every problem found in one pass over a policy, in file order.
type ErrorList []Error

// Error joins the problems one per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Warning is something in a valid policy that is probably not what its
// author meant.
type Warning struct {
	Pos Position
	Msg string
}

// String formats the warning as "file:line:col: warning: message".
func (w Warning) String() string { return w.Pos.String() + ": warning: " + w.Msg }
