package deploy_test

import (
	"fmt"
	"strings"
	"testing"
)

// The ports in this package's table are the binaries' own defaults.
func TestServicePortsAreTheBinariesDefaults(t *testing.T) {
	for name, s := range services {
		usage, ok := helps[s.bin].flags["listen"]
		if !ok {
			t.Errorf("%s --help has no -listen flag:\n%s", s.bin, helps[s.bin].text)
			continue
		}
		if want := fmt.Sprintf(`:%d"`, s.port); !strings.Contains(usage, want) {
			t.Errorf("%s (%s): -listen does not default to port %d:\n%s", name, s.bin, s.port, usage)
		}
	}
}

// Says which of the names the manifests use ahead of the code have landed,
// so that the pending list and deploy/README.md can be brought up to date.
func TestPendingNames(t *testing.T) {
	for bin, names := range pending {
		for _, n := range names {
			if helps[bin].env[n] {
				t.Logf("%s now reads %s: drop it from `pending` and the README's list of later changes", bin, n)
			} else {
				t.Logf("%s does not read %s yet (pending)", bin, n)
			}
		}
	}
}

func TestEnvAndFlagCheckers(t *testing.T) {
	if err := checkEnv("ozsecretstored", []string{"OZ_KEK_FILE", "OZ_KEYRING", "OZ_SECRETSTORE_LISTEN", "OZ_TLS_CA"}); err != nil {
		t.Errorf("real names refused: %v", err)
	}
	if err := checkEnv("ozgateway", []string{"OZ_TLS_CERT", "OZ_GATEWAY_ADDR"}); err != nil {
		t.Errorf("real names refused: %v", err)
	}
	if err := checkFlags("ozresolverd", []string{"--listen=:1", "--bootstrap-token-file", "x"}); err != nil {
		t.Errorf("real flags refused: %v", err)
	}
	for _, c := range []struct {
		bin   string
		names []string
	}{
		{"ozgateway", []string{"OZ_GATEWAY_LISTEN"}},       // the gateway's is OZ_GATEWAY_ADDR
		{"ozgateway", []string{"OZ_STORE"}},                // pending only for the stateful services
		{"ozauditd", []string{"OZ_KEK_FILE"}},              // the secretstore's
		{"ozsecretstored", []string{"SECRETSTORE_LISTEN"}}, // not an OZ_ name
	} {
		if err := checkEnv(c.bin, c.names); err == nil {
			t.Errorf("checkEnv(%s, %v) accepted a name the binary does not read", c.bin, c.names)
		}
	}
	if err := checkFlags("ozgateway", []string{"--store=bolt:x"}); err == nil {
		t.Error("checkFlags accepted a flag ozgateway does not have")
	}
}
