package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// With -spans, every process of the system writes its trace spans as JSON
// lines to its log (the console exporter, OTEL_TRACES_EXPORTER=console), and
// ozbench prints where the wall-clock time of each kind of call went: the
// median duration of each span, by its path from the call's first span,
// so that a hop's cost is its client span minus its server span. Tracing
// adds its own cost to every span; read the figures beside each other,
// not beside the untraced ones.

// span is the part of a stdout-exported span that the breakdown needs.
type span struct {
	Name        string
	SpanContext struct{ SpanID string }
	Parent      struct{ SpanID string }
	StartTime   time.Time
	EndTime     time.Time

	process string // the log it was read from: gateway, resolver, …
}

// readSpans returns the spans in the logs of dir (<data-dir>/logs), by id.
func readSpans(dir string) (map[string]*span, error) {
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	spans := map[string]*span{}
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line := sc.Bytes()
			if !strings.Contains(string(line), `"SpanContext"`) {
				continue // a log line
			}
			s := &span{process: strings.TrimSuffix(filepath.Base(path), ".log")}
			if json.Unmarshal(line, s) == nil && s.SpanContext.SpanID != "" {
				spans[s.SpanContext.SpanID] = s
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	return spans, nil
}

// printSpanBreakdown prints, for each span path seen at least minCount
// times, the median duration and how often it was seen.
func printSpanBreakdown(dir string, minCount int) error {
	spans, err := readSpans(dir)
	if err != nil {
		return err
	}
	children := map[string][]*span{}
	for _, s := range spans {
		children[s.Parent.SpanID] = append(children[s.Parent.SpanID], s)
	}
	durations := map[string][]time.Duration{}
	var walk func(s *span, path string)
	walk = func(s *span, path string) {
		path += " / " + s.process + " " + shortSpanName(s.Name)
		durations[path] = append(durations[path], s.EndTime.Sub(s.StartTime))
		for _, c := range children[s.SpanContext.SpanID] {
			walk(c, path)
		}
	}
	for _, s := range spans {
		if _, ok := spans[s.Parent.SpanID]; !ok { // a call's first span
			walk(s, "")
		}
	}
	var paths []string
	for p, ds := range durations {
		if len(ds) >= minCount {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	fmt.Println("\n== where the time of each call went: median of each span (µs), by its path; tracing adds its own cost ==")
	for _, p := range paths {
		ds := durations[p]
		slices.Sort(ds)
		fmt.Printf("%8.0f  n=%-6d %s\n", us(ds[len(ds)/2]), len(ds), strings.TrimPrefix(p, " / "))
	}
	return nil
}

// shortSpanName drops the package of an RPC span's name
// ("oz.scope.v1.RunService/StartRun" → "RunService/StartRun").
func shortSpanName(name string) string {
	svc, method, ok := strings.Cut(name, "/")
	if !ok {
		return name
	}
	if i := strings.LastIndex(svc, "."); i >= 0 {
		svc = svc[i+1:]
	}
	return svc + "/" + method
}
