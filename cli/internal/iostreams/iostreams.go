// Package iostreams holds the standard streams of a command, whether they
// are terminals, and the prompter that asks a person for input. Commands
// take them as values so tests can replace every one of them.
package iostreams

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// IOStreams are a command's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// Whether each stream is a terminal. Commands prompt only when
	// StdinTTY, and print messages meant for people only on a terminal.
	StdinTTY  bool
	StdoutTTY bool
	StderrTTY bool
}

// System returns the process's streams.
func System() *IOStreams {
	return &IOStreams{
		In:        os.Stdin,
		Out:       os.Stdout,
		ErrOut:    os.Stderr,
		StdinTTY:  isTerminal(os.Stdin),
		StdoutTTY: isTerminal(os.Stdout),
		StderrTTY: isTerminal(os.Stderr),
	}
}

// Test returns streams backed by buffers, none of them a terminal.
func Test() (ios *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd()))
}

// Prompter asks the person at the terminal. Callers use it only when
// IOStreams.StdinTTY is true.
type Prompter interface {
	// Password shows prompt on standard error and reads one line without
	// echoing it. The line ending is not part of the result.
	Password(ctx context.Context, prompt string) ([]byte, error)
	// Confirm shows prompt on standard error and reads a line: true for
	// "y" or "yes" (any case), false for anything else.
	Confirm(ctx context.Context, prompt string) (bool, error)
}

// TerminalPrompter prompts on the process's terminal: standard input must be
// a terminal, prompts go to standard error.
type TerminalPrompter struct {
	In     *os.File
	ErrOut io.Writer
}

// NewTerminalPrompter returns a prompter for os.Stdin and os.Stderr.
func NewTerminalPrompter() *TerminalPrompter {
	return &TerminalPrompter{In: os.Stdin, ErrOut: os.Stderr}
}

var _ Prompter = (*TerminalPrompter)(nil)

// Password reads with echo turned off (term.ReadPassword). If ctx ends
// first (Ctrl-C), it restores the terminal and returns ctx's error.
func (p *TerminalPrompter) Password(ctx context.Context, prompt string) ([]byte, error) {
	fd := int(p.In.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("read from terminal: %w", err)
	}
	fmt.Fprint(p.ErrOut, prompt)
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(p.ErrOut) // the Enter was not echoed
		if r.err != nil {
			return nil, fmt.Errorf("read from terminal: %w", r.err)
		}
		return r.b, nil
	case <-ctx.Done():
		_ = term.Restore(fd, state)
		fmt.Fprintln(p.ErrOut)
		return nil, ctx.Err()
	}
}

// Confirm reads one line from the terminal.
func (p *TerminalPrompter) Confirm(ctx context.Context, prompt string) (bool, error) {
	fmt.Fprint(p.ErrOut, prompt)
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := readLine(p.In)
		done <- result{line, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			return false, fmt.Errorf("read from terminal: %w", r.err)
		}
		if r.err != nil {
			fmt.Fprintln(p.ErrOut) // Ctrl-D: the answer had no newline
		}
		return IsYes(r.line), nil
	case <-ctx.Done():
		fmt.Fprintln(p.ErrOut)
		return false, ctx.Err()
	}
}

// IsYes reports whether a confirmation answer means yes.
func IsYes(answer string) bool {
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true
	}
	return false
}

// readLine reads up to and excluding a newline, one byte at a time so that
// nothing after the line is consumed from r.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			return b.String(), err
		}
	}
}

// ScriptedPrompter answers prompts from fixed values; for tests.
type ScriptedPrompter struct {
	Passwords [][]byte
	Answers   []string
	Prompts   []string
}

var _ Prompter = (*ScriptedPrompter)(nil)

// Password returns the next scripted password.
func (p *ScriptedPrompter) Password(_ context.Context, prompt string) ([]byte, error) {
	p.Prompts = append(p.Prompts, prompt)
	if len(p.Passwords) == 0 {
		return nil, errors.New("scripted prompter: no password left")
	}
	b := p.Passwords[0]
	p.Passwords = p.Passwords[1:]
	return b, nil
}

// Confirm returns whether the next scripted answer means yes.
func (p *ScriptedPrompter) Confirm(_ context.Context, prompt string) (bool, error) {
	p.Prompts = append(p.Prompts, prompt)
	if len(p.Answers) == 0 {
		return false, errors.New("scripted prompter: no answer left")
	}
	a := p.Answers[0]
	p.Answers = p.Answers[1:]
	return IsYes(a), nil
}
