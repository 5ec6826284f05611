// Package keyring does the envelope encryption of secret values (DESIGN §4).
//
// Every sealed value gets its own random 256-bit data key; the value is
// encrypted with AES-256-GCM under that key, with additional data supplied
// by the caller (the secret's owner, name and value version), so a
// ciphertext moved to another record or version does not open. The data key
// is wrapped (AES-256-GCM again) by a key-encryption key (KEK) from a
// versioned keyring: the primary KEK wraps new data keys, older KEKs still
// unwrap, and Rewrap moves a wrapped data key to the primary KEK without
// touching the value's ciphertext.
//
// The keyring's JSON form is
//
//	{"primary":"k1","keys":{"k1":"<base64 of 32 bytes>"}}
//
// Only the standard library's crypto is used. Errors never contain key
// material or plaintext.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// KeySize is the size of key-encryption keys and data keys: AES-256.
const KeySize = 32

// ErrOpen is returned (wrapped) when a data key does not unwrap or a
// ciphertext does not decrypt: wrong key, wrong additional data (a
// ciphertext moved to another record or version), or tampering.
var ErrOpen = errors.New("keyring: message authentication failed")

var keyIDRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Keyring is a versioned set of key-encryption keys. It is safe for
// concurrent use; Rotate may run while others Seal and Open.
type Keyring struct {
	mu      sync.RWMutex
	primary string
	keys    map[string][]byte
}

// Envelope is one sealed value: the id of the KEK that wrapped its data
// key, the wrapped data key and the value's ciphertext. The nonces are
// prefixed to WrappedKey and Ciphertext. None of it is secret.
type Envelope struct {
	KEKID      string
	WrappedKey []byte
	Ciphertext []byte
}

// IsZero reports whether e holds nothing.
func (e Envelope) IsZero() bool {
	return e.KEKID == "" && len(e.WrappedKey) == 0 && len(e.Ciphertext) == 0
}

// Clone returns a deep copy of e.
func (e Envelope) Clone() Envelope {
	return Envelope{KEKID: e.KEKID, WrappedKey: slices.Clone(e.WrappedKey), Ciphertext: slices.Clone(e.Ciphertext)}
}

// fileFormat is the JSON form of a keyring.
type fileFormat struct {
	Primary string            `json:"primary"`
	Keys    map[string]string `json:"keys"`
}

// Generate returns a new keyring holding one random key, "k1", as primary.
func Generate() (*Keyring, error) {
	k := &Keyring{keys: map[string][]byte{}}
	if _, err := k.Rotate(); err != nil {
		return nil, err
	}
	return k, nil
}

// Parse reads a keyring from its JSON form.
func Parse(data []byte) (*Keyring, error) {
	var f fileFormat
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		// The JSON decoder's messages quote at most a token's type, never
		// its content, but keep it generic anyway.
		return nil, errors.New(`keyring: not valid JSON of the form {"primary":"k1","keys":{"k1":"<base64 of 32 bytes>"}}`)
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("keyring: no keys")
	}
	k := &Keyring{primary: f.Primary, keys: make(map[string][]byte, len(f.Keys))}
	for id, enc := range f.Keys {
		if !keyIDRE.MatchString(id) {
			return nil, fmt.Errorf("keyring: key id %q must match %s", id, keyIDRE)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q is not standard base64", id)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("keyring: key %q must be %d bytes, got %d", id, KeySize, len(key))
		}
		k.keys[id] = key
	}
	if f.Primary == "" {
		return nil, errors.New("keyring: no primary key id")
	}
	if _, ok := k.keys[f.Primary]; !ok {
		return nil, fmt.Errorf("keyring: primary key %q is not in keys", f.Primary)
	}
	return k, nil
}

// Load reads a keyring file.
func Load(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	k, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreate loads the keyring file at path, or, when there is none,
// generates a keyring and writes it there with mode 0600 (development mode).
// created reports whether it did.
func LoadOrCreate(path string) (k *Keyring, created bool, err error) {
	k, err = Load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, false, err
	}
	k, err = Generate()
	if err != nil {
		return nil, false, err
	}
	// Two processes starting at once must not each write their own key;
	// the loser reads the winner's.
	if err := k.Create(path); errors.Is(err, os.ErrExist) {
		k, err = Load(path)
		return k, false, err
	} else if err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// Create writes the keyring to the new file path, mode 0600, durably (the
// file and its directory fsynced). O_EXCL: when path exists, or another
// process creates it at once, the error wraps os.ErrExist and nothing is
// written.
func (k *Keyring) Create(path string) error {
	data, err := k.MarshalJSON()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create keyring: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write keyring %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// Save writes the keyring to path atomically (a temporary file renamed over
// it), with mode 0600.
func (k *Keyring) Save(path string) error {
	data, err := k.MarshalJSON()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".keyring-*.tmp")
	if err != nil {
		return fmt.Errorf("save keyring: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save keyring: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save keyring: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save keyring: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save keyring: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save keyring: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// MarshalJSON returns the keyring's JSON form, keys included: handle it as
// the secret it is.
func (k *Keyring) MarshalJSON() ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	f := fileFormat{Primary: k.primary, Keys: make(map[string]string, len(k.keys))}
	for id, key := range k.keys {
		f.Keys[id] = base64.StdEncoding.EncodeToString(key)
	}
	return json.MarshalIndent(f, "", "  ")
}

// String describes the keyring without its keys.
func (k *Keyring) String() string {
	return fmt.Sprintf("keyring(primary=%s, keys=%s)", k.Primary(), strings.Join(k.IDs(), ","))
}

// Primary returns the id of the key that wraps new data keys.
func (k *Keyring) Primary() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.primary
}

// IDs returns the ids of all keys, sorted.
func (k *Keyring) IDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return slices.Sorted(maps.Keys(k.keys))
}

// Rotate adds a new random key and makes it the primary; the old keys stay
// for unwrapping. It returns the new key's id: "k<n>", one above the
// highest such id in the keyring.
func (k *Keyring) Rotate() (string, error) {
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return "", fmt.Errorf("keyring: generate key: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for id := range k.keys {
		if rest, ok := strings.CutPrefix(id, "k"); ok {
			if v, err := strconv.Atoi(rest); err == nil && v > n {
				n = v
			}
		}
	}
	id := "k" + strconv.Itoa(n+1)
	k.keys[id] = key
	k.primary = id
	return id, nil
}

// Seal encrypts plaintext under a fresh data key, binding it to ad, and
// wraps the data key with the primary KEK.
func (k *Keyring) Seal(plaintext, ad []byte) (Envelope, error) {
	dek := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, dek); err != nil {
		return Envelope{}, fmt.Errorf("keyring: generate data key: %w", err)
	}
	defer clear(dek)
	ct, err := seal(dek, plaintext, ad)
	if err != nil {
		return Envelope{}, err
	}
	k.mu.RLock()
	id, kek := k.primary, k.keys[k.primary]
	k.mu.RUnlock()
	wrapped, err := seal(kek, dek, wrapAD(id, ad))
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{KEKID: id, WrappedKey: wrapped, Ciphertext: ct}, nil
}

// Open decrypts e, which must have been sealed with the same ad. It returns
// an error wrapping ErrOpen when the data key does not unwrap or the
// ciphertext does not decrypt.
func (k *Keyring) Open(e Envelope, ad []byte) ([]byte, error) {
	dek, err := k.unwrap(e, ad)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	pt, err := open(dek, e.Ciphertext, ad)
	if err != nil {
		return nil, fmt.Errorf("keyring: decrypt value: %w", err)
	}
	return pt, nil
}

// Rewrap returns e with its data key wrapped by the primary KEK. The
// ciphertext is the same bytes. changed is false when e was already wrapped
// by the primary KEK (then e is returned as is).
func (k *Keyring) Rewrap(e Envelope, ad []byte) (out Envelope, changed bool, err error) {
	k.mu.RLock()
	id, kek := k.primary, k.keys[k.primary]
	k.mu.RUnlock()
	if e.KEKID == id {
		return e, false, nil
	}
	dek, err := k.unwrap(e, ad)
	if err != nil {
		return Envelope{}, false, err
	}
	defer clear(dek)
	wrapped, err := seal(kek, dek, wrapAD(id, ad))
	if err != nil {
		return Envelope{}, false, err
	}
	return Envelope{KEKID: id, WrappedKey: wrapped, Ciphertext: e.Ciphertext}, true, nil
}

func (k *Keyring) unwrap(e Envelope, ad []byte) ([]byte, error) {
	k.mu.RLock()
	kek, ok := k.keys[e.KEKID]
	k.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("keyring: key-encryption key %q is not in the keyring", e.KEKID)
	}
	dek, err := open(kek, e.WrappedKey, wrapAD(e.KEKID, ad))
	if err != nil {
		return nil, fmt.Errorf("keyring: unwrap data key: %w", err)
	}
	if len(dek) != KeySize {
		return nil, fmt.Errorf("keyring: unwrap data key: %w", ErrOpen)
	}
	return dek, nil
}

// wrapAD binds a wrapped data key to the KEK id and to the value's own
// additional data, so a wrapped key moved to another record fails too.
func wrapAD(kekID string, ad []byte) []byte {
	out := make([]byte, 0, 16+len(kekID)+len(ad))
	out = append(out, "oz.dek.v1\x00"...)
	out = append(out, kekID...)
	out = append(out, 0)
	return append(out, ad...)
}

func seal(key, plaintext, ad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, fmt.Errorf("keyring: generate nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plaintext, ad), nil
}

func open(key, sealed, ad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return aead, nil
}

// macInfo separates the MAC keys derived from KEKs from every other use of
// them.
const macInfo = "oz.keyring.mac.v1"

// MAC returns an HMAC-SHA256 of data under a key derived (HKDF-SHA256)
// from the primary KEK, and that KEK's id. The KEK itself never keys
// anything but data keys; the derived key is not stored. A MAC is a
// fingerprint that reveals nothing of data to someone without the
// keyring, even when data is guessable (a secret value).
func (k *Keyring) MAC(data []byte) (kekID string, sum []byte, err error) {
	k.mu.RLock()
	id, kek := k.primary, k.keys[k.primary]
	k.mu.RUnlock()
	sum, err = mac(kek, data)
	return id, sum, err
}

// CheckMAC reports whether sum is the MAC (MAC) of data under KEK kekID.
// It returns an error when the keyring does not hold kekID.
func (k *Keyring) CheckMAC(kekID string, data, sum []byte) (bool, error) {
	k.mu.RLock()
	kek, ok := k.keys[kekID]
	k.mu.RUnlock()
	if !ok {
		return false, fmt.Errorf("keyring: no key %q", kekID)
	}
	want, err := mac(kek, data)
	if err != nil {
		return false, err
	}
	return hmac.Equal(want, sum), nil
}

func mac(kek, data []byte) ([]byte, error) {
	key, err := hkdf.Key(sha256.New, kek, nil, macInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("keyring: derive MAC key: %w", err)
	}
	defer clear(key)
	h := hmac.New(sha256.New, key)
	h.Write(data)
	return h.Sum(nil), nil
}
