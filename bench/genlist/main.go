// Command genlist writes a blocklist of n distinct domains, one a line,
// shaped like a real feed's, for load and memory measurements.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
)

func main() {
	n := flag.Int("n", 1_000_000, "number of domains")
	flag.Parse()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"mail", "login", "secure", "cdn", "track", "ads", "portal", "update", "army", "navy", "mod", "gov", "pay", "cloud"}
	tlds := []string{"com", "net", "org", "ml", "info", "xyz", "co.uk", "top"}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fmt.Fprintln(w, "# generated blocklist")
	for i := 0; i < *n; i++ {
		fmt.Fprintf(w, "%s-%s%d.%s\n", words[rng.IntN(len(words))], words[rng.IntN(len(words))], i, tlds[rng.IntN(len(tlds))])
	}
}
