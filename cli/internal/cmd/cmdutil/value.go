package cmdutil

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// MaxValueRead bounds how much a value source is read. The server's limit
// (64 KiB by default, configurable) is far lower; this only keeps a wrong
// file or an endless pipe from filling memory.
const MaxValueRead = 16 << 20

// ValueFileFlag is the flag that names the file holding a value.
const ValueFileFlag = "value-file"

// ReadValue reads the value of secret name:
//   - from file when it is set: its exact bytes ("-" is standard input);
//   - else, when standard input is a terminal, from a hidden prompt;
//   - else from standard input, without one trailing "\n" or "\r\n".
//
// The value is never printed, and no error returned here contains it. An
// empty value is a usage error.
func ReadValue(ctx context.Context, ios *iostreams.IOStreams, p iostreams.Prompter, file, name string) ([]byte, error) {
	var (
		v   []byte
		err error
	)
	switch {
	case file == "-":
		v, err = readAll(ios.In, "standard input")
	case file != "":
		v, err = readFile(file)
	case ios.StdinTTY:
		v, err = p.Password(ctx, fmt.Sprintf("Value for %s: ", name))
	default:
		v, err = readAll(ios.In, "standard input")
		v = TrimNewline(v)
	}
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, exitcode.Usagef("value: must not be empty")
	}
	return v, nil
}

// TrimNewline removes one trailing "\n" or "\r\n" from b.
func TrimNewline(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	if bytes.HasSuffix(b, []byte("\n")) {
		return b[:len(b)-1]
	}
	return b
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, exitcode.Usagef("--%s: %v", ValueFileFlag, err)
	}
	defer f.Close()
	return readAll(f, path)
}

func readAll(r io.Reader, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxValueRead+1))
	if err != nil {
		return nil, fmt.Errorf("read value from %s: %w", what, err)
	}
	if len(b) > MaxValueRead {
		return nil, exitcode.Usagef("value: larger than %d MiB (from %s)", MaxValueRead>>20, what)
	}
	return b, nil
}
