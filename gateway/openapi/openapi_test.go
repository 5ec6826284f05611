package openapi_test

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/ozsecrets/oz/gateway/openapi"
)

// load returns the embedded document, loaded and validated by kin-openapi.
func load(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Document)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return doc
}

func TestDocumentIsValidOpenAPI3(t *testing.T) {
	doc := load(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: got %q, want 3.x", doc.OpenAPI)
	}
	if doc.Paths.Len() < 40 {
		t.Errorf("paths: got %d, want every REST route (more than 40)", doc.Paths.Len())
	}
	bearer := doc.Components.SecuritySchemes["bearer"]
	if bearer == nil || bearer.Value.Type != "http" || bearer.Value.Scheme != "bearer" {
		t.Errorf("securitySchemes.bearer: got %+v, want type http, scheme bearer", bearer)
	}
}

// A path parameter is a lower-case word: {team}, never the generator's
// numbered {name_1} nor a resource pattern {name=teams/*}.
var pathParam = regexp.MustCompile(`^\{[a-z][a-zA-Z]*\}$`)

// An operation id is Service_Method, with the first segment of the path
// for a method's additional bindings (SecretService_GetSecret_Users); no
// number.
var operationID = regexp.MustCompile(`^[A-Z][A-Za-z]*Service_[A-Z][A-Za-z]*(_[A-Z][A-Za-z]*)?$`)

func TestEveryOperationIsDescribed(t *testing.T) {
	doc := load(t)
	ids := map[string]string{}
	for _, path := range doc.Paths.Keys() {
		var inPath []string
		for seg := range strings.SplitSeq(path, "/") {
			seg, _, _ = strings.Cut(seg, ":") // a custom method: /v1/{x}:end
			if !strings.ContainsAny(seg, "{}") {
				continue
			}
			if !pathParam.MatchString(seg) {
				t.Errorf("path %s: segment %q, want a plain parameter such as {team}", path, seg)
			}
			inPath = append(inPath, strings.Trim(seg, "{}"))
		}
		for method, op := range doc.Paths.Value(path).Operations() {
			where := method + " " + path
			if op.Summary == "" || strings.Contains(op.Summary, "\n") {
				t.Errorf("%s: summary %q, want one line", where, op.Summary)
			}
			if !operationID.MatchString(op.OperationID) {
				t.Errorf("%s: operationId %q, want Service_Method[_Collection]", where, op.OperationID)
			}
			if other, ok := ids[op.OperationID]; ok {
				t.Errorf("%s: operationId %s, also used by %s", where, op.OperationID, other)
			}
			ids[op.OperationID] = where
			var declared []string
			for _, p := range op.Parameters {
				if p.Value.In == "path" {
					declared = append(declared, p.Value.Name)
				}
			}
			slices.Sort(declared)
			want := slices.Sorted(slices.Values(inPath))
			if !slices.Equal(declared, want) {
				t.Errorf("%s: path parameters %v, want %v", where, declared, want)
			}
		}
	}
}

// TestEveryRouteIsListed: each REST route of proto/http.yaml (additional
// bindings too) is an operation of the document, and the document has no
// other. The route's resource pattern is written as a client fills it:
// {name=teams/*/secrets/*} is teams/{team}/secrets/{secret}.
func TestEveryRouteIsListed(t *testing.T) {
	b, err := os.ReadFile("../../proto/http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rule := regexp.MustCompile(`(?m)^\s*-?\s*(get|post|put|patch|delete):\s*(\S+)\s*$`)
	matches := rule.FindAllStringSubmatch(string(b), -1)
	if len(matches) < 40 {
		t.Fatalf("found %d routes in proto/http.yaml; the pattern no longer matches the file", len(matches))
	}
	doc := load(t)
	listed := 0
	for _, item := range doc.Paths.Map() {
		listed += len(item.Operations())
	}
	for _, m := range matches {
		method, path := strings.ToUpper(m[1]), expand(m[2])
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s %s (%s in proto/http.yaml): not in the document", method, path, m[2])
		}
	}
	if listed != len(matches) {
		t.Errorf("operations: got %d, want %d (one per route of proto/http.yaml)", listed, len(matches))
	}
}

// expand writes each {field=pattern} of an HTTP rule as its pattern with
// every * named after the collection before it, in the singular.
func expand(template string) string {
	field := regexp.MustCompile(`\{\w+=([^}]*)\}`)
	return field.ReplaceAllStringFunc(template, func(m string) string {
		segs := strings.Split(field.FindStringSubmatch(m)[1], "/")
		for i, s := range segs {
			if s == "*" && i > 0 {
				segs[i] = "{" + strings.TrimSuffix(segs[i-1], "s") + "}"
			}
		}
		return strings.Join(segs, "/")
	})
}

func TestNoInternalService(t *testing.T) {
	for _, internal := range []string{"internalapi", "AuthService", "RunSecretsService"} {
		if strings.Contains(string(openapi.Document), internal) {
			t.Errorf("document mentions %s, want no internal service", internal)
		}
	}
	doc := load(t)
	var tags []string
	for _, tag := range doc.Tags {
		tags = append(tags, tag.Name)
	}
	for _, public := range []string{"SecretService", "DirectoryService", "TokenService", "AuditService", "RunService"} {
		if !slices.Contains(tags, public) {
			t.Errorf("tags: got %v, want %s among them", tags, public)
		}
	}
}
