package harness

import "testing"

// The kernel hands a just-freed port to the next listen on port 0 often
// (about one pick in eight over 2,000 here); FreePort must still never
// repeat itself, or two services of one system get the same address.
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		addr, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("FreePort returned %s twice", addr)
		}
		seen[addr] = true
	}
}
