// Command openapigen turns the Swagger 2.0 document protoc-gen-openapiv2
// makes from the protos (and proto/http.yaml) into the OpenAPI 3 document
// the gateway serves. `make generate` runs it; its output is committed.
//
// protoc-gen-openapiv2 (with expand_slashed_path_patterns) already writes
// real path parameters (/v1/teams/{team}/secrets/{secret}); kin-openapi's
// openapi2conv converts the rest. What is left is done here, each for a
// reason written at its function: no stray path parameters, operation ids
// not numbered, one-line summaries, a bearer scheme, no unused tags. The
// result must pass kin-openapi's validator, or nothing is written.
//
// Usage: openapigen -in oz.swagger.json -out oz.openapi.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

func main() {
	in := flag.String("in", "", "the Swagger 2.0 document (protoc-gen-openapiv2's output)")
	out := flag.String("out", "", "where to write the OpenAPI 3 document")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	if in == "" || out == "" {
		return errors.New("-in and -out are required")
	}
	v2, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	doc, err := convert(v2)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	return os.WriteFile(out, doc, 0o644)
}

// convert returns the OpenAPI 3 document, as indented JSON ending in a
// newline, of the Swagger 2.0 document v2.
func convert(v2 []byte) ([]byte, error) {
	var doc2 openapi2.T
	if err := json.Unmarshal(v2, &doc2); err != nil {
		return nil, fmt.Errorf("read Swagger 2.0: %w", err)
	}
	dropStrayPathParams(&doc2)
	doc, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("convert to OpenAPI 3: %w", err)
	}
	if err := renameOperations(doc); err != nil {
		return nil, err
	}
	if err := oneLineSummaries(doc); err != nil {
		return nil, err
	}
	bearerScheme(doc)
	dropUnusedTags(doc)
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI 3 document is not valid: %w", err)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// dropStrayPathParams removes path parameters that are not in their path.
// A rule whose resource name is a literal ({parent=system}/events) expands
// to /v1/system/events, yet protoc-gen-openapiv2 still lists "parent" as
// a path parameter, which OpenAPI forbids. The gateway fills the field
// from the literal, so there is nothing for a client to send.
func dropStrayPathParams(doc *openapi2.T) {
	for path, item := range doc.Paths {
		for _, op := range item.Operations() {
			op.Parameters = slices.DeleteFunc(op.Parameters, func(p *openapi2.Parameter) bool {
				return p.In == "path" && !strings.Contains(path, "{"+p.Name+"}")
			})
		}
	}
}

// numbered is an operation id protoc-gen-openapiv2 gave an additional
// binding of a method: the method's id followed by the binding's number.
var numbered = regexp.MustCompile(`^(\w+?)(\d+)$`)

// renameOperations replaces the numbered ids of additional bindings
// (SecretService_GetSecret2) with the method's id and the first segment
// of the binding's path (SecretService_GetSecret_Users): a number says
// nothing and changes when a binding is added before it.
func renameOperations(doc *openapi3.T) error {
	ids := map[string]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			ids[op.OperationID] = true
		}
	}
	renamed := map[string]string{} // new id -> path, to report a clash
	for _, path := range doc.Paths.Keys() {
		for _, op := range doc.Paths.Value(path).Operations() {
			m := numbered.FindStringSubmatch(op.OperationID)
			if m == nil || !ids[m[1]] {
				continue
			}
			id := m[1] + "_" + collection(path)
			if ids[id] || renamed[id] != "" {
				return fmt.Errorf("operation %s at %s: the new id %s is taken", op.OperationID, path, id)
			}
			renamed[id] = path
			op.OperationID = id
		}
	}
	return nil
}

// collection returns the first segment of a /v1/ path, capitalised, with
// what follows a ':' or '{' cut: "/v1/users/{user}/secrets" is "Users".
func collection(path string) string {
	seg := strings.TrimPrefix(path, "/v1/")
	seg, _, _ = strings.Cut(seg, "/")
	seg, _, _ = strings.Cut(seg, ":")
	if seg == "" {
		return "Root"
	}
	return strings.ToUpper(seg[:1]) + seg[1:]
}

// oneLineSummaries makes each summary one line (the generator keeps the
// line breaks of the proto comment's first paragraph) and refuses an
// operation without one: its RPC needs a comment in the proto.
func oneLineSummaries(doc *openapi3.T) error {
	var missing []string
	for _, path := range doc.Paths.Keys() {
		for _, op := range doc.Paths.Value(path).Operations() {
			op.Summary = strings.Join(strings.Fields(op.Summary), " ")
			if op.Summary == "" {
				missing = append(missing, op.OperationID)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("operations without a summary (comment their RPCs in the protos): %s", strings.Join(missing, ", "))
	}
	return nil
}

// bearerScheme turns the "bearer" API key scheme (Swagger 2.0 has no
// other way to say it) into an HTTP bearer scheme, which is what the
// gateway answers a 401 with (WWW-Authenticate: Bearer).
func bearerScheme(doc *openapi3.T) {
	ref, ok := doc.Components.SecuritySchemes["bearer"]
	if !ok || ref.Value == nil {
		return
	}
	ref.Value = openapi3.NewSecurityScheme().
		WithType("http").WithScheme("bearer").
		WithDescription(ref.Value.Description)
}

// dropUnusedTags removes the tags no operation uses: the generator makes
// one of every service in the files it is given, internal ones included
// (oz.internalapi.v1's AuthService), although they have no route.
func dropUnusedTags(doc *openapi3.T) {
	used := map[string]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, t := range op.Tags {
				used[t] = true
			}
		}
	}
	doc.Tags = slices.DeleteFunc(doc.Tags, func(t *openapi3.Tag) bool { return !used[t.Name] })
}
