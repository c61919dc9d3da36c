package ledger

import (
	"crypto/subtle"
	"encoding/hex"
	"slices"
)

// Key secret prefixes (K1).
const (
	PrefixSubscription = "sk-ss-v1-"
	PrefixPayg         = "sk-ai-v1-"
)

func validLast4(s string) bool {
	if len(s) != 4 {
		return false
	}
	for i := 0; i < 4; i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

func (c *CreateKey) apply(l *Ledger, now int64) (KeyView, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return KeyView{}, err
	}
	if c.Kind != KindSubscription && c.Kind != KindPayg {
		return KeyView{}, invalid("kind must be subscription or payg")
	}
	if len(c.Name) > 100 {
		return KeyView{}, invalid("name is longer than 100 characters")
	}
	if !validID(c.KeyID) || !validLast4(c.Last4) {
		return KeyView{}, invalid("bad key id or last4")
	}
	if k := l.keys[c.KeyID]; k != nil && k.Hash == c.Hash && k.AccountID == a.ID {
		return keyView(k), nil // a retried command: same answer
	}
	if l.keys[c.KeyID] != nil || l.keyHash[c.Hash] != nil {
		return KeyView{}, conflict("key exists")
	}
	if len(a.KeyIDs) >= MaxKeysPerAccount {
		return KeyView{}, conflict("an account has at most %d keys", MaxKeysPerAccount)
	}
	k := &Key{ID: c.KeyID, AccountID: a.ID, Kind: c.Kind, Name: c.Name, Hash: c.Hash, Last4: c.Last4, CreatedAt: now}
	l.keys[k.ID] = k
	l.keyHash[k.Hash] = k
	a.KeyIDs = append(a.KeyIDs, k.ID)
	l.markKey(k.ID)
	l.markAccount(a)
	return keyView(k), nil
}

func (c *RotateKey) apply(l *Ledger, now int64) (KeyView, error) {
	k := l.keys[c.KeyID]
	if k == nil {
		return KeyView{}, notFound("key", c.KeyID)
	}
	if !validLast4(c.Last4) {
		return KeyView{}, invalid("bad last4")
	}
	if k.Hash == c.Hash {
		return keyView(k), nil // a retried command: same answer
	}
	if l.keyHash[c.Hash] != nil {
		return KeyView{}, conflict("key secret collision")
	}
	delete(l.keyHash, k.Hash)
	k.Hash, k.Last4 = c.Hash, c.Last4
	l.keyHash[k.Hash] = k
	l.markKey(k.ID)
	l.endKeySessions(k) // B2: a session lasts no longer than its key's secret
	return keyView(k), nil
}

func (c *RevokeKey) apply(l *Ledger, _ int64) (None, error) {
	k := l.keys[c.KeyID]
	if k == nil {
		return None{}, notFound("key", c.KeyID)
	}
	delete(l.keyHash, k.Hash)
	delete(l.keys, k.ID)
	l.markKey(k.ID)
	l.endKeySessions(k) // B2
	if a := l.accounts[k.AccountID]; a != nil {
		a.KeyIDs = slices.DeleteFunc(a.KeyIDs, func(id string) bool { return id == k.ID })
		if a.ExtraKeyID == k.ID {
			// E1: Extra Usage needs a chosen key; without it, it is off.
			a.ExtraKeyID, a.ExtraEnabled = "", false
		}
		l.markAccount(a)
	}
	return None{}, nil
}

// KeyByHash finds a key by the SHA-256 of its secret (K3). The map lookup
// is on the hash, so timing reveals nothing about the secret; the final
// comparison is constant-time as K3 asks.
func (l *Ledger) keyByHash(h [32]byte) *Key {
	k := l.keyHash[h]
	if k == nil || subtle.ConstantTimeCompare(k.Hash[:], h[:]) != 1 {
		return nil
	}
	return k
}

// KeyByHash names the account and id of the live key whose secret hashes
// to h (K1), for a caller that signs in with a key rather than calling a
// model with it.
func (l *Ledger) KeyByHash(h [32]byte) (accountID, keyID string, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	k := l.keyByHash(h)
	if k == nil || l.accounts[k.AccountID] == nil {
		return "", "", false
	}
	return k.AccountID, k.ID, true
}

// NewSecret makes a key secret from 32 random bytes the caller draws (the
// ledger reads no randomness): the kind's prefix and 64 hex characters
// (K1), with the hash the ledger keeps and the last four characters it
// shows.
func NewSecret(kind string, random [32]byte) (secret string, hash [32]byte, last4 string) {
	prefix := PrefixSubscription
	if kind == KindPayg {
		prefix = PrefixPayg
	}
	secret = prefix + hex.EncodeToString(random[:])
	return secret, HashSecret(secret), secret[len(secret)-4:]
}
