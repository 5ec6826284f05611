package root

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// suggest returns the visible command of cmds (by any of its names) that
// typed most likely meant, or "" when none is close. Close is an edit
// distance of at most a third of the longer word (at least 1; a swap of
// two letters counts once), or typed being the start of exactly one name.
// urfave/cli's own SuggestCommand always names some command, however far:
// a wrong guess is worse than none.
func suggest(cmds []*cli.Command, typed string) string {
	best, bestDist := "", -1
	var prefixed []string
	for _, c := range cmds {
		if c.Hidden || c.Name == "help" {
			continue
		}
		for _, name := range c.Names() {
			if typed != "" && strings.HasPrefix(name, typed) {
				prefixed = append(prefixed, c.Name)
			}
			d := distance(typed, name)
			if d <= max(1, max(len(typed), len(name))/3) && (bestDist < 0 || d < bestDist) {
				best, bestDist = c.Name, d
			}
		}
	}
	if len(prefixed) > 0 && allSame(prefixed) {
		return prefixed[0]
	}
	return best
}

func allSame(s []string) bool {
	for _, v := range s {
		if v != s[0] {
			return false
		}
	}
	return true
}

// didYouMean is the line that follows an unknown command's error, or "".
func didYouMean(cmds []*cli.Command, typed string) string {
	if s := suggest(cmds, typed); s != "" {
		return fmt.Sprintf("\nDid you mean %q?", s)
	}
	return ""
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// bytes each cost 1 (command names are ASCII).
func distance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
