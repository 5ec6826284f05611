package openapi_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ozsecrets/oz/gateway/openapi"
)

func TestPublic(t *testing.T) {
	pub, err := openapi.Public()
	if err != nil {
		t.Fatalf("Public: %v", err)
	}
	type doc struct {
		Swagger     string         `json:"swagger"`
		Info        map[string]any `json:"info"`
		Paths       map[string]any `json:"paths"`
		Definitions map[string]any `json:"definitions"`
		Tags        []struct {
			Name string `json:"name"`
		} `json:"tags"`
	}
	var got, orig doc
	if err := json.Unmarshal(pub, &got); err != nil {
		t.Fatalf("Public is not JSON: %v", err)
	}
	if err := json.Unmarshal(openapi.Document, &orig); err != nil {
		t.Fatalf("Document is not JSON: %v", err)
	}

	if !reflect.DeepEqual(got.Paths, orig.Paths) || !reflect.DeepEqual(got.Definitions, orig.Definitions) || got.Swagger != orig.Swagger {
		t.Errorf("Public changed paths, definitions or version; want only tags changed")
	}
	names := make(map[string]bool)
	for _, tag := range got.Tags {
		names[tag.Name] = true
	}
	for _, internal := range []string{"AuthService", "RunSecretsService"} {
		if names[internal] {
			t.Errorf("tags: got %s, want no internal service", internal)
		}
	}
	for _, public := range []string{"SecretService", "DirectoryService", "TokenService"} {
		if !names[public] {
			t.Errorf("tags: got none for %s, want one", public)
		}
	}
}
