// Package mint draws what zenmuxd makes fresh from crypto/rand: ids,
// tokens and key secrets, for every API that makes them (admin,
// self-service, payments). The ledger stays deterministic: it is handed
// random bytes (ledger.NewSecret) and never draws them.
package mint

import (
	"crypto/rand"
	"encoding/hex"

	"zenmux/ledger"
)

// Bytes returns n random bytes (crypto/rand never fails on Linux; if it
// did, carrying on with predictable ids or secrets would be worse than
// stopping).
func Bytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// Hex returns n random bytes as hex.
func Hex(n int) string { return hex.EncodeToString(Bytes(n)) }

// Secret makes a key secret of kind from fresh random bytes (K1).
func Secret(kind string) (secret string, hash [32]byte, last4 string) {
	var r [32]byte
	copy(r[:], Bytes(len(r)))
	return ledger.NewSecret(kind, r)
}

// CreateKey proposes a new key of kind named name for the account, with a
// fresh id and secret, and returns its view carrying the secret: the one
// time it is shown (K1).
func CreateKey(p ledger.Proposer, accountID, kind, name string) (ledger.KeyView, error) {
	secret, hash, last4 := Secret(kind)
	kv, err := ledger.Propose(p, &ledger.CreateKey{AccountID: accountID, KeyID: "key_" + Hex(8), Kind: kind, Name: name, Hash: hash, Last4: last4})
	if err != nil {
		return ledger.KeyView{}, err
	}
	kv.Key = secret
	return kv, nil
}

// RotateKey proposes a fresh secret of kind for the key keyID (K2) and
// returns its view carrying the new secret, shown this once.
func RotateKey(p ledger.Proposer, keyID, kind string) (ledger.KeyView, error) {
	secret, hash, last4 := Secret(kind)
	kv, err := ledger.Propose(p, &ledger.RotateKey{KeyID: keyID, Hash: hash, Last4: last4})
	if err != nil {
		return ledger.KeyView{}, err
	}
	kv.Key = secret
	return kv, nil
}
