package cmdutil

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// EnumKey renders an API enum value for machines, the one way every
// command does: its name without the enum's prefix, in lower case
// (RUN_OUTCOME_FAILED_STRICT is "failed_strict"). The zero value
// (X_UNSPECIFIED) and a value this build does not know render as none.
//
// The prefix is the zero value's name without "UNSPECIFIED": the API
// names every enum's values that way (buf's ENUM_VALUE_PREFIX and
// ENUM_ZERO_VALUE_SUFFIX).
func EnumKey(e protoreflect.Enum, none string) string {
	values := e.Descriptor().Values()
	v := values.ByNumber(e.Number())
	if v == nil || e.Number() == 0 {
		return none
	}
	prefix := strings.TrimSuffix(string(values.ByNumber(0).Name()), "UNSPECIFIED")
	return strings.ToLower(strings.TrimPrefix(string(v.Name()), prefix))
}
