package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// v2 is what protoc-gen-openapiv2 writes, cut down to the cases convert
// fixes: an additional binding's numbered id, a stray path parameter of a
// literal resource ({parent=system}), a summary over two lines, a tag of a
// service without routes and an API key scheme for the bearer token.
const v2 = `{
  "swagger": "2.0",
  "info": {"title": "t", "version": "v1"},
  "tags": [{"name": "SecretService"}, {"name": "AuthService"}],
  "securityDefinitions": {"bearer": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Bearer token"}},
  "paths": {
    "/v1/teams/{team}/secrets/{secret}": {"get": {"operationId": "SecretService_GetSecret", "summary": "GetSecret returns\na secret.", "tags": ["SecretService"],
      "parameters": [{"name": "team", "in": "path", "required": true, "type": "string"}, {"name": "secret", "in": "path", "required": true, "type": "string"}],
      "responses": {"200": {"description": "ok"}}}},
    "/v1/users/{user}/secrets/{secret}": {"get": {"operationId": "SecretService_GetSecret2", "summary": "GetSecret returns a secret.", "tags": ["SecretService"],
      "parameters": [{"name": "user", "in": "path", "required": true, "type": "string"}, {"name": "secret", "in": "path", "required": true, "type": "string"}],
      "responses": {"200": {"description": "ok"}}}},
    "/v1/system/events": {"get": {"operationId": "SecretService_ListEvents", "summary": "ListEvents.", "tags": ["SecretService"],
      "parameters": [{"name": "parent", "in": "path", "required": true, "type": "string"}],
      "responses": {"200": {"description": "ok"}}}}
  }
}`

func TestConvert(t *testing.T) {
	out, err := convert([]byte(v2))
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Tags    []struct {
			Name string `json:"name"`
		} `json:"tags"`
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Summary     string `json:"summary"`
			Parameters  []struct {
				Name string `json:"name"`
			} `json:"parameters"`
		} `json:"paths"`
		Components struct {
			SecuritySchemes map[string]struct {
				Type   string `json:"type"`
				Scheme string `json:"scheme"`
			} `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: got %q, want 3.x", doc.OpenAPI)
	}
	if got := doc.Paths["/v1/users/{user}/secrets/{secret}"]["get"].OperationID; got != "SecretService_GetSecret_Users" {
		t.Errorf("additional binding's id: got %q, want SecretService_GetSecret_Users", got)
	}
	if got := doc.Paths["/v1/teams/{team}/secrets/{secret}"]["get"]; got.OperationID != "SecretService_GetSecret" || got.Summary != "GetSecret returns a secret." {
		t.Errorf("first binding: got id %q, summary %q; want SecretService_GetSecret, one line", got.OperationID, got.Summary)
	}
	if got := doc.Paths["/v1/system/events"]["get"].Parameters; len(got) != 0 {
		t.Errorf("/v1/system/events parameters: got %v, want none", got)
	}
	if len(doc.Tags) != 1 || doc.Tags[0].Name != "SecretService" {
		t.Errorf("tags: got %v, want only SecretService", doc.Tags)
	}
	if s := doc.Components.SecuritySchemes["bearer"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("bearer scheme: got %+v, want http bearer", s)
	}
}

func TestConvertRefuses(t *testing.T) {
	tests := []struct{ name, from, to, wantErr string }{
		{"NoSummary", `"summary": "ListEvents."`, `"summary": ""`, "without a summary"},
		{"IDTaken", `"SecretService_ListEvents"`, `"SecretService_GetSecret_Users"`, "is taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := convert([]byte(strings.Replace(v2, tt.from, tt.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("convert: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
