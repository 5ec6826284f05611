package mask

// SetDenseLimits sets the dense table's budget (entries) and depth until
// the returned function restores them.
func SetDenseLimits(budget int, depth uint32) (restore func()) {
	b, d := denseBudget, denseDepth
	denseBudget, denseDepth = budget, depth
	return func() { denseBudget, denseDepth = b, d }
}

// Stats describes the compiled automaton, for tests.
type Stats struct{ States, Dense, Stride int }

func (m *Matcher) Stats() Stats {
	return Stats{States: len(m.a.depth), Dense: int(m.a.nDense), Stride: m.a.stride}
}
