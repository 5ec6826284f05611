package execcmd_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/cmd/execcmd"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

func TestRunMask(t *testing.T) {
	env := map[string]string{"TOKEN": "tok_0123456789", "PIN": "12"}
	files := map[string]string{"key.pem": "line-one\nline-two\n", "empty": ""}
	tests := []struct {
		name       string
		fromEnv    []string
		fromFile   []string
		in         string
		wantOut    string
		wantErrOut string
		wantCode   int
		wantErr    string
	}{
		{name: "Env", fromEnv: []string{"TOKEN"}, in: "a tok_0123456789 b\n", wantOut: "a *** b\n"},
		{name: "File", fromFile: []string{"key.pem"}, in: "x line-two y\n", wantOut: "x *** y\n"},
		{name: "Short", fromEnv: []string{"TOKEN", "PIN"}, in: "12\n", wantOut: "12\n", wantErrOut: "oz: not masked (shorter than 4 bytes): $PIN\n"},
		{name: "Nothing", in: "x", wantCode: exitcode.Usage, wantErr: "nothing to mask"},
		{name: "Unset", fromEnv: []string{"NOPE"}, wantCode: exitcode.Usage, wantErr: "$NOPE is not set"},
		{name: "NoFile", fromFile: []string{"missing"}, wantCode: exitcode.Usage, wantErr: "file does not exist"},
		{name: "EmptyFile", fromFile: []string{"empty"}, wantCode: exitcode.Usage, wantErr: "empty is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, in, out, errOut := iostreams.Test()
			in.WriteString(tt.in)
			err := execcmd.RunMask(context.Background(), &execcmd.MaskOptions{
				IO:     ios,
				Getenv: func(k string) string { return env[k] },
				ReadFile: func(p string) ([]byte, error) {
					if v, ok := files[p]; ok {
						return []byte(v), nil
					}
					return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
				},
				FromEnv:  tt.fromEnv,
				FromFile: tt.fromFile,
			})
			lines, code := exitcode.Describe(err)
			if code != tt.wantCode {
				t.Fatalf("got exit code %d (%q), want %d", code, lines, tt.wantCode)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want it to hold %q", err, tt.wantErr)
			}
			if got := out.String(); got != tt.wantOut {
				t.Errorf("got stdout %q, want %q", got, tt.wantOut)
			}
			if got := errOut.String(); got != tt.wantErrOut {
				t.Errorf("got stderr %q, want %q", got, tt.wantErrOut)
			}
		})
	}
}

// blockingReader never returns, like a terminal nobody types on.
type blockingReader struct{ release chan struct{} }

func (b blockingReader) Read([]byte) (int, error) {
	<-b.release
	return 0, errors.New("released")
}

func TestRunMaskInterrupted(t *testing.T) {
	ios, _, _, _ := iostreams.Test()
	r := blockingReader{release: make(chan struct{})}
	ios.In = r
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := execcmd.RunMask(ctx, &execcmd.MaskOptions{IO: ios, Getenv: func(string) string { return "value" }, FromEnv: []string{"X"}})
	close(r.release) // let the copy end, for goleak
	if _, code := exitcode.Describe(err); code != exitcode.Interrupted {
		t.Errorf("got %v (exit %d), want interrupted", err, code)
	}
}
