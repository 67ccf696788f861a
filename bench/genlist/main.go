// Command genlist writes a blocklist of n distinct domains, one a line,
// shaped like a real feed's, for load and memory measurements.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
)

func main() {
	n := flag.Int("n", 1_000_000, "number of domains")
	length := flag.Int("len", 0, "pad every name with random labels to this many bytes (0: as a feed writes them)")
	flag.Parse()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"mail", "login", "secure", "cdn", "track", "ads", "portal", "update", "army", "navy", "mod", "gov", "pay", "cloud"}
	tlds := []string{"com", "net", "org", "ml", "info", "xyz", "co.uk", "top"}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fmt.Fprintln(w, "# generated blocklist")
	var pad strings.Builder
	for i := 0; i < *n; i++ {
		name := fmt.Sprintf("%s-%s%d.%s", words[rng.IntN(len(words))], words[rng.IntN(len(words))], i, tlds[rng.IntN(len(tlds))])
		pad.Reset()
		// Labels of up to 20 random letters, each with its dot, in front.
		for want := *length - len(name); want > 1; {
			l := min(want-1, 20)
			for range l {
				pad.WriteByte(byte('a' + rng.IntN(26)))
			}
			pad.WriteByte('.')
			want -= l + 1
		}
		w.WriteString(pad.String())
		w.WriteString(name)
		w.WriteByte('\n')
	}
}
