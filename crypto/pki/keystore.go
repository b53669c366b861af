package pki

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Private keys at rest: every key file holds the PKCS #8 DER of one key,
// sealed with AES-256-GCM under a master key derived with argon2id
// (RFC 9106) from the passphrase, or from a random secret kept in the
// directory when no passphrase is given. kdf.json records the salt, the
// parameters and a check value, so that a wrong passphrase is reported as
// such instead of as a corrupt key.

// ErrWrongPassphrase means the passphrase does not open the key store.
var ErrWrongPassphrase = errors.New("pki: wrong passphrase: it does not open the private keys of this authority")

// PassphraseEnv is the environment variable the commands read the key
// store's passphrase from (the package itself reads no environment).
const PassphraseEnv = "RELAIS_PKI_PASSPHRASE"

const (
	kdfFile    = "kdf.json"
	secretFile = "secret"
	keyPEMType = "RELAIS ENCRYPTED KEY"
	checkText  = "relais-pki key store check v1"
)

// kdfParams are argon2id's parameters. The default is RFC 9106 4's second
// recommended option (t=3, p=4, m=64 MiB).
type kdfParams struct {
	Time    uint32 `json:"time"`
	Memory  uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
}

var defaultKDF = kdfParams{Time: 3, Memory: 64 * 1024, Threads: 4}

// kdfState is kdf.json.
type kdfState struct {
	Version int       `json:"version"`
	KDF     string    `json:"kdf"`
	Params  kdfParams `json:"params"`
	Salt    []byte    `json:"salt"`
	// Source is "passphrase" or "secret-file".
	Source string `json:"source"`
	// Check is checkText sealed with the master key.
	Check []byte `json:"check"`
}

// keyStore seals and opens private keys.
type keyStore struct {
	aead cipher.AEAD
}

// openKeyStore derives the master key for dir, creating kdf.json (and the
// secret file when there is no passphrase) on first use.
func openKeyStore(dir string, passphrase []byte, log *slog.Logger) (*keyStore, error) {
	path := filepath.Join(dir, kdfFile)
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return createKeyStore(dir, passphrase, log)
	case err != nil:
		return nil, fmt.Errorf("pki: reading %s: %w", path, err)
	}
	var st kdfState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	if st.KDF != "argon2id" || st.Params.Time == 0 || st.Params.Memory == 0 || st.Params.Threads == 0 || len(st.Salt) < 16 {
		return nil, fmt.Errorf("pki: %s: unsupported key derivation", path)
	}
	secret := passphrase
	if len(secret) == 0 {
		if st.Source == "passphrase" {
			return nil, fmt.Errorf("pki: the private keys in %s are protected by a passphrase: set %s or give a passphrase file", dir, PassphraseEnv)
		}
		secret, err = readSecret(filepath.Join(dir, secretFile))
		if err != nil {
			return nil, err
		}
	}
	ks, err := deriveKeyStore(secret, st.Salt, st.Params)
	if err != nil {
		return nil, err
	}
	got, err := ks.open(st.Check, "check")
	if err != nil || subtle.ConstantTimeCompare(got, []byte(checkText)) != 1 {
		if len(passphrase) > 0 && st.Source == "secret-file" {
			return nil, fmt.Errorf("%w (the keys are protected by the secret file %s, not by a passphrase)", ErrWrongPassphrase, filepath.Join(dir, secretFile))
		}
		return nil, ErrWrongPassphrase
	}
	return ks, nil
}

func createKeyStore(dir string, passphrase []byte, log *slog.Logger) (*keyStore, error) {
	st := kdfState{Version: 1, KDF: "argon2id", Params: defaultKDF, Salt: make([]byte, 16), Source: "passphrase"}
	if _, err := rand.Read(st.Salt); err != nil {
		return nil, fmt.Errorf("pki: salt: %w", err)
	}
	secret := passphrase
	if len(secret) == 0 {
		st.Source = "secret-file"
		buf := make([]byte, 32)
		if _, err := rand.Read(buf); err != nil {
			return nil, fmt.Errorf("pki: secret: %w", err)
		}
		secret = []byte(hex.EncodeToString(buf))
		path := filepath.Join(dir, secretFile)
		if err := writeAtomic(path, append(secret, '\n'), 0o600); err != nil {
			return nil, err
		}
		log.Warn("no passphrase for the PKI: private keys are encrypted with a random secret kept beside them; they are only as safe as that file",
			"secret", path, "set", PassphraseEnv)
	}
	ks, err := deriveKeyStore(secret, st.Salt, st.Params)
	if err != nil {
		return nil, err
	}
	st.Check = ks.seal([]byte(checkText), "check")
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("pki: encoding %s: %w", kdfFile, err)
	}
	if err := writeAtomic(filepath.Join(dir, kdfFile), raw, 0o600); err != nil {
		return nil, err
	}
	return ks, nil
}

func readSecret(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: reading the key store secret: %w", err)
	}
	s := []byte(strings.TrimSpace(string(raw)))
	if len(s) == 0 {
		return nil, fmt.Errorf("pki: the key store secret %s is empty", path)
	}
	return s, nil
}

// ReadPassphraseFile reads a passphrase from the first line of a file.
func ReadPassphraseFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: reading the passphrase file: %w", err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return nil, fmt.Errorf("pki: the passphrase file %s is empty", path)
	}
	return []byte(line), nil
}

func deriveKeyStore(secret, salt []byte, p kdfParams) (*keyStore, error) {
	// RFC 9106 3.1: argon2id, 32-byte tag used as the AES-256 key.
	key := argon2.IDKey(secret, salt, p.Time, p.Memory, p.Threads, 32)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("pki: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("pki: cipher: %w", err)
	}
	return &keyStore{aead: aead}, nil
}

// seal encrypts with a random 96-bit nonce; label is bound as additional
// data so that a sealed key cannot be swapped for another's.
func (ks *keyStore) seal(plain []byte, label string) []byte {
	nonce := make([]byte, ks.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("pki: crypto/rand failed: %v", err))
	}
	return ks.aead.Seal(nonce, nonce, plain, []byte("relais-pki:"+label))
}

func (ks *keyStore) open(sealed []byte, label string) ([]byte, error) {
	n := ks.aead.NonceSize()
	if len(sealed) < n+ks.aead.Overhead() {
		return nil, errors.New("pki: sealed data too short")
	}
	return ks.aead.Open(nil, sealed[:n], sealed[n:], []byte("relais-pki:"+label))
}

// sealKey encodes key as an encrypted PEM block.
func (ks *keyStore) sealKey(key crypto.Signer, label string) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{
		Type:    keyPEMType,
		Headers: map[string]string{"Cipher": "AES-256-GCM", "KDF": "argon2id, see " + kdfFile, "Label": label},
		Bytes:   ks.seal(der, label),
	}), nil
}

func (ks *keyStore) openKey(data []byte, label string) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != keyPEMType {
		return nil, errors.New("pki: not an encrypted key file")
	}
	der, err := ks.open(b.Bytes, label)
	if err != nil {
		return nil, fmt.Errorf("pki: decrypting key %s: %w", label, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing key %s: %w", label, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: key %s cannot sign", label)
	}
	return s, nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory: write, fsync, rename, fsync the directory. Readers see the old
// content or the new, never a part.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("pki: creating %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("pki: writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pki: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pki: writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
