package cmdutil

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// Redacted replaces a value found in an error message.
const Redacted = "[REDACTED]"

// minRedact is the shortest value searched for in messages: shorter values
// match ordinary words too often for the replacement to make sense.
const minRedact = 4

// RedactValue returns err with every occurrence of value in its message
// (and in field violations) replaced by Redacted. The server should never
// echo a value; this makes sure the CLI never prints one even if it does.
// A gRPC status stays a status with the same code.
func RedactValue(err error, value []byte) error {
	if err == nil || len(bytes.TrimSpace(value)) < minRedact {
		return err
	}
	needles := []string{string(value)}
	if t := strings.TrimSpace(string(value)); t != string(value) {
		needles = append(needles, t)
	}
	redact := func(s string) string {
		for _, n := range needles {
			s = strings.ReplaceAll(s, n, Redacted)
		}
		return s
	}
	var se interface {
		error
		GRPCStatus() *status.Status
	}
	if !errors.As(err, &se) {
		if r := redact(err.Error()); r != err.Error() {
			return errors.New(r)
		}
		return err
	}
	sp := se.GRPCStatus().Proto()
	changed := false
	if r := redact(sp.GetMessage()); r != sp.GetMessage() {
		sp.Message, changed = r, true
	}
	for i, d := range sp.GetDetails() {
		var br errdetails.BadRequest
		if d.MessageIs(&br) && d.UnmarshalTo(&br) == nil {
			for _, v := range br.GetFieldViolations() {
				if r := redact(v.GetDescription()); r != v.GetDescription() {
					v.Description, changed = r, true
				}
			}
			if a, aerr := anypb.New(&br); aerr == nil {
				sp.Details[i] = a
			}
			continue
		}
		// Any other detail is dropped if its bytes hold the value.
		if bytes.Contains(d.GetValue(), value) {
			sp.Details[i], changed = &anypb.Any{}, true
		}
	}
	prefix := strings.TrimSuffix(err.Error(), se.Error())
	if prefix == err.Error() {
		prefix = ""
	}
	if r := redact(prefix); r != prefix {
		changed = true
	}
	if !changed {
		return err
	}
	if prefix != "" {
		return fmt.Errorf("%s%w", redact(prefix), status.ErrorProto(sp))
	}
	return status.ErrorProto(sp)
}
