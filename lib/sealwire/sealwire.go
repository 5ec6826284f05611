// Package sealwire holds the bytes both ends of sealing agree on (DESIGN
// §4, §5): the HPKE (RFC 9180) algorithm ids and the info strings that
// bind a sealed blob to what it is for. A client seals a secret's value
// to a secretstore sealing key; the secretstore seals a run's environment
// to the runner's key. Each side imports these definitions, so that they
// cannot drift apart; changing one changes the wire. (The web app spells
// the secret suite and info in TypeScript, in web/src/seal.ts.)
//
// Every sealing is single-shot (base mode), with no additional data:
//
//	hpke.Seal(pub, sealwire.KDF(), sealwire.AEAD(), info, plaintext)
package sealwire

import "crypto/hpke"

// HPKE algorithm ids. The KDF and AEAD are fixed for every sealing; a
// secret's value is sealed with one of the two KEMs the secretstore keeps
// keys of, a run's environment with the KEM of the runner's key.
const (
	KEMX25519         uint16 = 0x0020 // DHKEM(X25519, HKDF-SHA256): browsers without ML-KEM
	KEMMLKEM768X25519 uint16 = 0x647a // ML-KEM-768+X25519 (X-Wing), post-quantum hybrid: the CLI
	KDFID             uint16 = 0x0001 // HKDF-SHA256
	AEADID            uint16 = 0x0002 // AES-256-GCM
)

// KDF returns the KDF of every sealing: HKDF-SHA256 (KDFID).
func KDF() hpke.KDF { return hpke.HKDFSHA256() }

// AEAD returns the AEAD of every sealing: AES-256-GCM (AEADID).
func AEAD() hpke.AEAD { return hpke.AES256GCM() }

// SecretInfoPrefix starts the HPKE info string of a secret's sealed value.
const SecretInfoPrefix = "oz-secret-v1|"

// SecretInfo is the HPKE info string a value of the secret name of owner
// is sealed with: "oz-secret-v1|teams/acme/secrets/API_KEY". owner is
// canonical ("teams/{team}" or "users/{user}", never "users/me"), name
// exact. It binds the blob to one secret, so that it does not open when
// replayed into another.
func SecretInfo(owner, name string) []byte {
	return []byte(SecretInfoPrefix + owner + "/secrets/" + name)
}

// RunInfoPrefix starts the HPKE info string of a run's sealed environment.
const RunInfoPrefix = "oz-run-v1|"

// RunInfo is the HPKE info string the environment of the run named run
// (its resource name, "teams/acme/runs/run-…") is sealed with:
// RunInfoPrefix followed by the name.
func RunInfo(run string) []byte {
	return []byte(RunInfoPrefix + run)
}
