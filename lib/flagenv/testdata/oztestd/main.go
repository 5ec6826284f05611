// Command oztestd is a binary built by the flagenv tests to check what
// Main and Parse do for --version and `version` in a real process.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/ozsecrets/oz/lib/flagenv"
)

func main() {
	flagenv.Main("oztestd", nil, func(context.Context) error {
		set := flagenv.New("oztestd", flagenv.Help{Usage: []string{"oztestd [flags]   serve"}}, os.Getenv, os.Stderr)
		var listen string
		set.String(&listen, "listen", "OZ_TEST_LISTEN", "127.0.0.1:1", "address to serve on")
		if err := set.Parse(os.Args[1:]); err != nil {
			return err
		}
		fmt.Println("served on", listen)
		return nil
	})
}
