//go:build race

package suggest

// raceEnabled is true under the race detector, which makes the generated 5k-workload
// cluster test several times slower: it then runs on a smaller cluster, with the same
// assertions.
const raceEnabled = true
