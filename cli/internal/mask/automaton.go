package mask

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
)

// Why a hand-written Aho–Corasick automaton: the Go libraries that exist
// (github.com/BobuSumisu/aho-corasick, github.com/petar-dambovaliev/aho-corasick,
// github.com/cloudflare/ahocorasick — the last two without a tagged release)
// all search one complete buffer. Masking a stream needs the automaton's
// state carried from one Write to the next, and the depth of that state
// (how many trailing bytes may still begin a match) to know what can be
// written through; none of them exposes either. The automaton below is the
// textbook construction over bytes (trie, failure links, for each state the
// longest pattern ending there), compiled to a DFA where it is hot, with a
// 4-gram prefilter in front (see scan) so that ordinary output does not
// walk it byte by byte.
//
// Layout. The shallow states (depth <= denseDepth), numbered breadth
// first, have a complete transition row over byte classes, failure links
// folded in: one table load per byte. The deeper states are almost always
// a chain through one long pattern: they keep only their trie edges and a
// failure link, and are numbered depth first so that a chain is contiguous
// in memory. A failure link leads to a shallower state, so a miss ends in
// a dense row. The dense table is capped at denseBudget entries whatever
// the size of the values.
//
// A state id is premultiplied: a dense state s has id s*nClass, the index
// of its row, so a step is dense[id+class[b]]. A sparse state has id
// denseLen + (s - nDense). Bit 31 of a transition's target flags a state
// that ends a pattern, so the hot loop tests a single comparison
// (id >= denseLen) for both rare cases.
//
// Case. Matching ignores ASCII case, at no cost per byte: the trie is
// built from the patterns with A–Z lowered, and an upper-case letter gets
// the byte class of its lower-case one. Every step goes through the class
// table — a dense row is indexed by class, a sparse state's edges are
// labelled with classes — so that one load folds the case for both. The
// 4-gram prefilters hash each byte with bit 0x20 set (see gramHash), which
// maps a letter and its other case to the same hash. Setting that bit also
// merges some other pairs of bytes ('@' and '`', '\n' and '*'): a
// prefilter may pass more, never less.

const matchFlag = 1 << 31

// Variables so that tests can force every state but the root sparse.
var (
	// denseBudget caps the dense table at 4 Mi entries (16 MiB).
	denseBudget = 4 << 20
	// denseDepth: states deeper than this are sparse. Ordinary output
	// rarely gets deeper; a match walks on through its pattern's chain.
	denseDepth uint32 = 6
)

type automaton struct {
	class    [256]uint8 // byte -> class; bytes in no pattern share class 0; A–Z share a–z's
	nClass   uint32
	nDense   uint32
	denseLen uint32   // nDense * nClass: ids below it are dense
	dense    []uint32 // nDense rows of nClass targets (flagged ids)

	// Sparse states (state number >= nDense), by k = number - nDense.
	edgeStart []uint32 // edges of k: edgeClass/edgeTo[edgeStart[k]:edgeStart[k+1]]
	edgeClass []uint8  // the class of the edge's byte: never 0
	edgeTo    []uint32 // flagged ids
	fail      []uint32 // clean id of the failure state

	// Per state number.
	depth  []uint32 // length of the string the state stands for
	outLen []uint32 // longest pattern that is a suffix of it; 0: none

	// shallowLen: ids below it are dense states at most 3 deep.
	shallowLen uint32

	// Prefilters (see scan): the first 4-gram of every pattern, and its
	// 4-grams at offsets below stride.
	starts filter
	inner  filter
	stride int

	longest int
}

// trie is the automaton under construction: first-child/next-sibling lists,
// children in increasing byte order.
type trie struct {
	label       []byte
	firstChild  []uint32
	nextSibling []uint32
	terminal    []bool
	depth       []uint32
}

const none = ^uint32(0)

func (t *trie) newNode(label byte, depth uint32) uint32 {
	t.label = append(t.label, label)
	t.firstChild = append(t.firstChild, none)
	t.nextSibling = append(t.nextSibling, none)
	t.terminal = append(t.terminal, false)
	t.depth = append(t.depth, depth)
	return uint32(len(t.label) - 1)
}

func (t *trie) child(n uint32, b byte) uint32 {
	for c := t.firstChild[n]; c != none; c = t.nextSibling[c] {
		if t.label[c] == b {
			return c
		}
		if t.label[c] > b {
			break
		}
	}
	return none
}

// buildTrie inserts sorted, distinct patterns. Sorting lets each pattern
// reuse the path of its predecessor up to their common prefix, so no
// child lookup is needed and children come in byte order.
func buildTrie(patterns [][]byte) *trie {
	nodes := 1 // the trie's size, so that it is allocated once
	for i, p := range patterns {
		nodes += len(p)
		if i > 0 {
			nodes -= commonPrefix(p, patterns[i-1])
		}
	}
	t := &trie{
		label:       make([]byte, 0, nodes),
		firstChild:  make([]uint32, 0, nodes),
		nextSibling: make([]uint32, 0, nodes),
		terminal:    make([]bool, 0, nodes),
		depth:       make([]uint32, 0, nodes),
	}
	t.newNode(0, 0)
	path := []uint32{0} // path[i]: node of the previous pattern's prefix of length i
	lastChild := []uint32{none}
	var prev []byte
	for _, p := range patterns {
		lcp := commonPrefix(p, prev)
		path, lastChild = path[:lcp+1], lastChild[:lcp+1]
		for i := lcp; i < len(p); i++ {
			parent := path[i]
			n := t.newNode(p[i], uint32(i+1))
			if lc := lastChild[i]; lc == none || t.firstChild[parent] == none {
				t.firstChild[parent] = n
			} else {
				t.nextSibling[lc] = n
			}
			lastChild[i] = n
			path = append(path, n)
			lastChild = append(lastChild, none)
		}
		t.terminal[path[len(p)]] = true
		prev = p
	}
	return t
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// compile builds the automaton of patterns (non-empty), which matches them
// ignoring ASCII case.
func compile(patterns [][]byte) *automaton {
	patterns = slices.Clone(patterns)
	for i, p := range patterns {
		patterns[i] = lowerASCII(p)
	}
	slices.SortFunc(patterns, bytes.Compare)
	patterns = slices.CompactFunc(patterns, bytes.Equal)
	t := buildTrie(patterns)
	a := &automaton{}
	for _, p := range patterns {
		a.longest = max(a.longest, len(p))
	}

	// Byte classes: each byte used by a pattern gets its own class, and
	// each upper-case letter its lower-case letter's. No pattern holds
	// A–Z, so at most 230 bytes are used: a class fits in a byte.
	var used [256]bool
	for _, b := range t.label[1:] {
		used[b] = true
	}
	a.nClass = 1
	for b := range 256 {
		if used[b] {
			a.class[b] = uint8(a.nClass)
			a.nClass++
		}
	}
	for b := 'A'; b <= 'Z'; b++ {
		a.class[b] = a.class[b-'A'+'a']
	}

	// Numbering: the shallow states, breadth first, get dense rows; the
	// others are numbered depth first, so that the states of a long
	// pattern follow each other in memory as the stream walks them.
	n := len(t.label)
	bfs := make([]uint32, 0, n) // trie nodes, breadth first
	bfs = append(bfs, 0)
	for i := 0; i < len(bfs); i++ {
		for c := t.firstChild[bfs[i]]; c != none; c = t.nextSibling[c] {
			bfs = append(bfs, c)
		}
	}
	nDense := 0
	for nDense < n && nDense < max(1, denseBudget/int(a.nClass)) && t.depth[bfs[nDense]] <= denseDepth {
		nDense++
	}
	a.nDense = uint32(nDense)
	a.denseLen = a.nDense * a.nClass
	if uint64(a.denseLen)+uint64(n) >= matchFlag {
		panic("mask: too many patterns") // gigabytes of values
	}
	num := make([]uint32, n)    // trie node -> number
	nodeOf := make([]uint32, n) // number -> trie node
	isDense := make([]bool, n)  // by trie node
	for i, node := range bfs[:nDense] {
		num[node], nodeOf[i], isDense[node] = uint32(i), node, true
	}
	next := uint32(nDense)
	var stack []uint32 // sparse subtrees still to number, last first
	for i := nDense - 1; i >= 0; i-- {
		var kids []uint32
		for c := t.firstChild[bfs[i]]; c != none; c = t.nextSibling[c] {
			if !isDense[c] {
				kids = append(kids, c)
			}
		}
		slices.Reverse(kids)
		stack = append(stack, kids...)
	}
	for len(stack) > 0 {
		node := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		num[node], nodeOf[next] = next, node
		next++
		mark := len(stack)
		for c := t.firstChild[node]; c != none; c = t.nextSibling[c] {
			stack = append(stack, c)
		}
		slices.Reverse(stack[mark:])
	}
	id := func(number uint32) uint32 {
		if number < a.nDense {
			return number * a.nClass
		}
		return a.denseLen + number - a.nDense
	}

	a.depth = make([]uint32, n)
	a.outLen = make([]uint32, n)
	failNum := make([]uint32, n) // failure state by number
	a.dense = make([]uint32, a.denseLen)
	nSparse := uint32(n) - a.nDense
	a.fail = make([]uint32, nSparse)
	a.edgeStart = make([]uint32, nSparse+1)
	a.edgeClass = make([]uint8, 0, nSparse) // a sparse state's edges lead to sparse states
	a.edgeTo = make([]uint32, 0, nSparse)

	flagged := func(number uint32) uint32 {
		if a.outLen[number] != 0 {
			return id(number) | matchFlag
		}
		return id(number)
	}
	// delta is the DFA transition of a state numbered below the one being
	// filled in; it always ends in a dense row.
	var delta func(number uint32, b byte) uint32
	delta = func(number uint32, b byte) uint32 {
		for number >= a.nDense {
			if c := t.child(nodeOf[number], b); c != none {
				return num[c]
			}
			number = failNum[number]
		}
		return a.numberOf(a.dense[number*a.nClass+uint32(a.class[b])] &^ matchFlag)
	}

	// Failure links, outputs and rows, in breadth-first order: a failure
	// state is shallower, so it is complete when it is needed.
	for _, node := range bfs {
		s := num[node]
		a.depth[s] = t.depth[node]
		if s != 0 {
			if t.terminal[node] {
				a.outLen[s] = a.depth[s]
			} else {
				a.outLen[s] = a.outLen[failNum[s]]
			}
		}
		// Children's failure links.
		for c := t.firstChild[node]; c != none; c = t.nextSibling[c] {
			if s == 0 {
				failNum[num[c]] = 0
			} else {
				failNum[num[c]] = delta(failNum[s], t.label[c])
			}
		}
		if s < a.nDense {
			row := a.dense[s*a.nClass : (s+1)*a.nClass]
			if s == 0 {
				for i := range row {
					row[i] = 0
				}
			} else {
				copy(row, a.dense[failNum[s]*a.nClass:(failNum[s]+1)*a.nClass])
			}
			// Children are numbered after s, so their outputs are not
			// known yet: rows are flagged in a second pass.
			for c := t.firstChild[node]; c != none; c = t.nextSibling[c] {
				row[a.class[t.label[c]]] = id(num[c])
			}
		}
	}
	nShallow := uint32(0)
	for nShallow < uint32(n) && a.depth[nShallow] < MinLen {
		nShallow++
	}
	a.shallowLen = min(nShallow, a.nDense) * a.nClass

	// The prefilters.
	minLen := MinLen
	if len(patterns) > 0 {
		minLen = len(patterns[0])
		for _, p := range patterns {
			minLen = min(minLen, len(p))
		}
	}
	a.stride = max(1, minLen-3)
	a.starts = newFilter(len(patterns))
	a.inner = newFilter(len(patterns) * a.stride)
	for _, p := range patterns {
		a.starts.add(p)
		for o := 0; o < a.stride && o+4 <= len(p); o++ {
			a.inner.add(p[o:])
		}
	}

	// Flag targets that end a pattern, and fill in the sparse states.
	for i, v := range a.dense {
		a.dense[i] = flagged(a.numberOf(v))
	}
	for s := a.nDense; s < uint32(n); s++ {
		k := s - a.nDense
		a.fail[k] = id(failNum[s])
		node := nodeOf[s]
		for c := t.firstChild[node]; c != none; c = t.nextSibling[c] {
			a.edgeClass = append(a.edgeClass, a.class[t.label[c]])
			a.edgeTo = append(a.edgeTo, flagged(num[c]))
		}
		a.edgeStart[k+1] = uint32(len(a.edgeClass))
	}
	return a
}

// numberOf returns the state number of a clean id.
func (a *automaton) numberOf(id uint32) uint32 {
	if id < a.denseLen {
		return id / a.nClass
	}
	return id - a.denseLen + a.nDense
}

// stepSparse returns the flagged id reached from sparse state id on a
// byte of class c.
func (a *automaton) stepSparse(id uint32, c uint8) uint32 {
	for id >= a.denseLen {
		k := id - a.denseLen
		for e := a.edgeStart[k]; e < a.edgeStart[k+1]; e++ {
			if a.edgeClass[e] == c {
				return a.edgeTo[e]
			}
		}
		id = a.fail[k]
	}
	return a.dense[id+uint32(c)]
}

// lowerByte returns b with A–Z lowered.
func lowerByte(b byte) byte {
	if b-'A' < 26 {
		return b + 'a' - 'A'
	}
	return b
}

// lowerASCII returns p with A–Z lowered: p itself when it has none.
func lowerASCII(p []byte) []byte {
	for i, b := range p {
		if b-'A' < 26 {
			q := slices.Clone(p)
			for j := i; j < len(q); j++ {
				q[j] = lowerByte(q[j])
			}
			return q
		}
	}
	return p
}

// caseBits, set in every byte of a 4-gram before it is hashed, makes the
// hash the same for every case variant of the 4-gram: lowerByte(b)|0x20 ==
// b|0x20 for every byte b.
const caseBits = 0x2020202020202020

// gramHash hashes the 4-gram x (little-endian), ignoring ASCII case, to
// 32-shift bits.
func gramHash(x uint32, shift uint32) uint32 {
	return ((x | caseBits&0xffffffff) * 0x9E3779B1) >> shift
}

// A filter is a set of 4-grams, kept as a bit set of their hashes (see
// gramHash): it has false positives, never false negatives, and does not
// tell ASCII case apart.
type filter struct {
	bits  []uint64
	shift uint32
}

func newFilter(grams int) filter {
	size := max(1<<16, 64*grams) // about one false hit in 64 per gram
	size = min(1<<24, 1<<bits.Len(uint(size-1)))
	return filter{bits: make([]uint64, size/64), shift: uint32(32 - bits.TrailingZeros(uint(size)))}
}

func (f *filter) add(gram []byte) {
	h := gramHash(binary.LittleEndian.Uint32(gram), f.shift)
	f.bits[h>>6] |= 1 << (h & 63)
}

// has reports whether p[:4] may be in the set; len(p) >= 4.
func (f *filter) has(p []byte) bool {
	h := gramHash(binary.LittleEndian.Uint32(p), f.shift)
	return f.bits[h>>6]&(1<<(h&63)) != 0
}

// nextStart returns the first i >= from where a pattern may start, or the
// first of the last three positions (whose 4-gram is not complete) when
// there is none before them. It tests every position: the stride is 1.
func (a *automaton) nextStart(p []byte, from int) int {
	grams, shift := a.starts.bits, a.starts.shift
	i := from
	// Eight bytes give the 4-grams of five positions (hashed as gramHash
	// does: case bits set once for all of them).
	for ; i+8 <= len(p); i += 5 {
		x := binary.LittleEndian.Uint64(p[i:]) | caseBits
		h0 := (uint32(x) * 0x9E3779B1) >> shift
		h1 := (uint32(x>>8) * 0x9E3779B1) >> shift
		h2 := (uint32(x>>16) * 0x9E3779B1) >> shift
		h3 := (uint32(x>>24) * 0x9E3779B1) >> shift
		h4 := (uint32(x>>32) * 0x9E3779B1) >> shift
		hit := grams[h0>>6]&(1<<(h0&63)) | grams[h1>>6]&(1<<(h1&63)) |
			grams[h2>>6]&(1<<(h2&63)) | grams[h3>>6]&(1<<(h3&63)) |
			grams[h4>>6]&(1<<(h4&63))
		if hit != 0 {
			break
		}
	}
	for ; i+4 <= len(p); i++ {
		if a.starts.has(p[i:]) {
			return i
		}
	}
	return i
}

// nextWindow returns the first position at or after from where a pattern
// may start, to within stride-1 bytes: the start of a window of stride
// positions that may hold the start of a match, or where the 4-grams run
// out. It tests one position in stride.
func (a *automaton) nextWindow(p []byte, from int) int {
	k := a.stride
	if k == 1 {
		return a.nextStart(p, from)
	}
	// The 4-gram at j is at offset j-s of any pattern starting at
	// s in (j-k, j], and offsets below k are in a.inner.
	for j := from + k - 1; j+4 <= len(p); j += k {
		if a.inner.has(p[j:]) {
			return j - k + 1
		}
		from = j + 1
	}
	return from
}

// scan runs the automaton over p from state id and calls match(i, n) for
// every i where a pattern ends at p[i] (n: the longest such pattern). It
// returns the clean id it ends in.
//
// Walking the automaton costs one dependent table load per byte, which
// caps it far below the speed of a pipe. So scan walks it only where a
// match may be. Every pattern is at least minLen (>= 4) bytes long, so a
// match starting at s has its first 4-gram at s, and one of its 4-grams
// at offsets 0..stride-1 (stride = minLen-3) on any grid of that stride.
// In the root state no match is in progress; scan then tests one 4-gram
// per stride bytes against the set of those inner 4-grams (nextWindow),
// and starts the automaton at the beginning of a window that passes. It
// leaves the automaton again once the state is at most 3 deep and none of
// the last 3 positions starts a pattern's first 4-gram (a.starts): then
// nothing in progress can become a match. A 4-gram that is not complete
// inside p passes both tests.
func (a *automaton) scan(id uint32, p []byte, match func(i int, n int)) uint32 {
	dense, class, denseLen, shallow := a.dense, &a.class, a.denseLen, a.shallowLen
	lastStart := -1 // in the automaton: the last position that may start a match
	for i := 0; i < len(p); {
		if id == 0 {
			i = a.nextWindow(p, i)
			if i >= len(p) {
				break
			}
			lastStart = i
		}
		c := class[p[i]]
		if id < denseLen {
			id = dense[id+uint32(c)]
		} else {
			id = a.stepSparse(id, c)
		}
		if id&matchFlag != 0 {
			id &^= matchFlag
			match(i, int(a.outLen[a.numberOf(id)]))
		}
		if i+4 > len(p) || a.starts.has(p[i:]) {
			lastStart = i
		}
		i++
		if id < shallow && lastStart < i-3 {
			id = 0
		}
	}
	return id
}

// depthOf returns how many trailing bytes the state stands for.
func (a *automaton) depthOf(id uint32) int { return int(a.depth[a.numberOf(id)]) }
