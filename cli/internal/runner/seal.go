package runner

import (
	"crypto/hpke"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/lib/hostbind"
	"github.com/ozsecrets/oz/lib/sealwire"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
)

// The HPKE suite of sealed run values (runs.proto SealedValues): the KEM
// is the runner's choice, the KDF and AEAD are fixed (package sealwire).
var (
	kdf  = sealwire.KDF()
	aead = sealwire.AEAD()
	kem  = hpke.MLKEM768X25519() // sealwire.KEMMLKEM768X25519, hybrid post-quantum
)

// Key is the key pair a runner generates for one run.
type Key struct {
	priv hpke.PrivateKey
}

// NewKey generates a fresh key pair. Use one per run and drop it after
// Open.
func NewKey() (*Key, error) {
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generate run key: %w", err)
	}
	return &Key{priv: priv}, nil
}

// Recipient returns the public half, as ResolveRun takes it.
func (k *Key) Recipient() *scopev1.RecipientKey {
	return &scopev1.RecipientKey{KemId: uint32(kem.ID()), PublicKey: k.priv.PublicKey().Bytes()}
}

// Var is one environment variable of a run: a secret's name and value.
//
// A host-bound secret (Binding not nil) must never reach the agent: its
// variable gets a placeholder, and the runner's egress proxy the value
// (StartEgress). Env refuses to set one.
type Var struct {
	Name    string
	Value   []byte
	Binding *hostbind.Binding
}

// String leaves the value out, so a Var can be printed or wrapped in an
// error safely.
func (v Var) String() string {
	if v.Binding != nil {
		return fmt.Sprintf("%s (bound to %s)", v.Name, strings.Join(v.Binding.Hosts, ", "))
	}
	return v.Name
}

// GoString keeps %#v from printing the value.
func (v Var) GoString() string { return "runner.Var{" + v.String() + "}" }

// ErrOpen is wrapped by every failure to open sealed values. Its message
// never holds a value.
var ErrOpen = errors.New("cannot open the run's sealed values")

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Open decrypts sealed, which must use this key's KEM, HKDF-SHA256 and
// AES-256-GCM and carry the info string wantInfo (sealwire.RunInfo), and returns the
// variables of the RunEnvironment inside. It refuses names that are not
// environment variable names, duplicate names, and values holding a NUL
// byte (an environment cannot carry them). Host-bound secrets
// (RunEnvironment.bound) come back with their Binding set; one whose
// binding or value the egress proxy could not enforce is refused. Every
// error wraps ErrOpen.
func (k *Key) Open(sealed *scopev1.SealedValues, wantInfo string) ([]Var, error) {
	switch {
	case sealed.GetKemId() != uint32(kem.ID()):
		return nil, fmt.Errorf("%w: KEM %#04x, want %#04x", ErrOpen, sealed.GetKemId(), kem.ID())
	case sealed.GetKdfId() != uint32(kdf.ID()):
		return nil, fmt.Errorf("%w: KDF %#04x, want %#04x", ErrOpen, sealed.GetKdfId(), kdf.ID())
	case sealed.GetAeadId() != uint32(aead.ID()):
		return nil, fmt.Errorf("%w: AEAD %#04x, want %#04x", ErrOpen, sealed.GetAeadId(), aead.ID())
	case string(sealed.GetInfo()) != wantInfo:
		return nil, fmt.Errorf("%w: sealed for %q, want %q", ErrOpen, sealed.GetInfo(), wantInfo)
	}
	plain, err := hpke.Open(k.priv, kdf, aead, sealed.GetInfo(), sealed.GetCiphertext())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOpen, err)
	}
	var env scopev1.RunEnvironment
	err = proto.Unmarshal(plain, &env)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: not a RunEnvironment", ErrOpen)
	}
	vars := make([]Var, 0, len(env.GetVars())+len(env.GetBound()))
	seen := map[string]bool{}
	check := func(name string, value []byte) error {
		switch {
		case !envName.MatchString(name):
			return fmt.Errorf("%w: %q is not an environment variable name", ErrOpen, name)
		case seen[name]:
			return fmt.Errorf("%w: %s appears twice", ErrOpen, name)
		case len(value) == 0:
			return fmt.Errorf("%w: %s has an empty value", ErrOpen, name)
		}
		for _, b := range value {
			if b == 0 {
				return fmt.Errorf("%w: the value of %s holds a NUL byte", ErrOpen, name)
			}
		}
		seen[name] = true
		return nil
	}
	for _, v := range env.GetVars() {
		if err := check(v.GetName(), v.GetValue()); err != nil {
			return nil, err
		}
		vars = append(vars, Var{Name: v.GetName(), Value: v.GetValue()})
	}
	for _, v := range env.GetBound() {
		if err := check(v.GetName(), v.GetValue()); err != nil {
			return nil, err
		}
		// The proxy could not enforce a binding it cannot read: refuse
		// the run rather than hand the agent anything.
		hosts, err := hostbind.Normalize(v.GetBinding().GetHosts())
		if err != nil {
			return nil, fmt.Errorf("%w: the binding of %s: %v", ErrOpen, v.GetName(), err)
		}
		if err := hostbind.ValidateValue(v.GetValue()); err != nil {
			return nil, fmt.Errorf("%w: the value of %s %v", ErrOpen, v.GetName(), err)
		}
		b := &hostbind.Binding{Hosts: hosts, AllowQuery: v.GetBinding().GetAllowQuery(), AllowBody: v.GetBinding().GetAllowBody()}
		vars = append(vars, Var{Name: v.GetName(), Value: v.GetValue(), Binding: b})
	}
	return vars, nil
}

// Seal is what the server does: it seals env to recipient for the run
// named run. It is here for tests and fakes, so that they seal exactly as
// Open expects.
func Seal(recipient *scopev1.RecipientKey, run string, env *scopev1.RunEnvironment) (*scopev1.SealedValues, error) {
	k, err := hpke.NewKEM(uint16(recipient.GetKemId()))
	if err != nil {
		return nil, err
	}
	pk, err := k.NewPublicKey(recipient.GetPublicKey())
	if err != nil {
		return nil, err
	}
	plain, err := proto.Marshal(env)
	if err != nil {
		return nil, err
	}
	info := sealwire.RunInfo(run)
	ct, err := hpke.Seal(pk, kdf, aead, info, plain)
	if err != nil {
		return nil, err
	}
	return &scopev1.SealedValues{
		KemId: recipient.GetKemId(), KdfId: uint32(kdf.ID()), AeadId: uint32(aead.ID()),
		Info: info, Ciphertext: ct,
	}, nil
}
