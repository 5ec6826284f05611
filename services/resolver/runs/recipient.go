package runs

import (
	"crypto/hpke"
	"fmt"
	"slices"
	"strings"

	"github.com/ozsecrets/oz/services/internal/errs"
)

// Recipient is the public key a runner generated for one run, that the
// run's values are sealed to (DESIGN §5): an HPKE KEM id and a serialized
// public key of that KEM. The values of oz.scope.v1.RecipientKey.
type Recipient struct {
	KEMID     uint32
	PublicKey []byte
}

// KEMs are the HPKE KEM ids a runner's key may use: every KEM of Go's
// crypto/hpke, listed rather than taken from hpke.NewKEM so that a KEM
// added to the standard library is not accepted unreviewed.
var KEMs = []uint16{
	0x0010, // DHKEM(P-256, HKDF-SHA256)
	0x0011, // DHKEM(P-384, HKDF-SHA384)
	0x0012, // DHKEM(P-521, HKDF-SHA512)
	0x0020, // DHKEM(X25519, HKDF-SHA256)
	0x0041, // ML-KEM-768
	0x0042, // ML-KEM-1024
	0x0050, // ML-KEM-768 + P-256
	0x0051, // ML-KEM-1024 + P-384
	0x647a, // ML-KEM-768 + X25519 (X-Wing)
}

// check validates the key where it arrives, in ResolveRun, before anything
// is read: the KEM is one of KEMs and the public key one of that KEM. This
// is the one check of it; the secretstore seals to the key as given. Only
// encapsulation tells an X25519 key of low order: the secretstore then
// refuses it, for field recipient.public_key. Errors are errs.Field errors
// for "recipient.kem_id" or "recipient.public_key"; they never quote the
// key.
func (rc Recipient) check() error {
	if rc.KEMID > 0xffff || !slices.Contains(KEMs, uint16(rc.KEMID)) {
		return errs.Field("recipient.kem_id", "must be a supported HPKE KEM id (%s), got 0x%04x", kemList(), rc.KEMID)
	}
	kem, err := hpke.NewKEM(uint16(rc.KEMID))
	if err != nil {
		return errs.Field("recipient.kem_id", "HPKE KEM 0x%04x is not available", rc.KEMID)
	}
	if len(rc.PublicKey) == 0 {
		return errs.Field("recipient.public_key", "is required")
	}
	if _, err := kem.NewPublicKey(rc.PublicKey); err != nil {
		return errs.Field("recipient.public_key", "is not a public key of HPKE KEM 0x%04x (%d bytes)", rc.KEMID, len(rc.PublicKey))
	}
	return nil
}

func kemList() string {
	ids := make([]string, len(KEMs))
	for i, id := range KEMs {
		ids[i] = fmt.Sprintf("0x%04x", id)
	}
	return strings.Join(ids, ", ")
}
