package ledger

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"time"
)

// Browser sessions and sign-in links (B2, B3). Both are replicated
// records keyed by the SHA-256 of a token the proposer made: any node
// serves a session, a restart keeps it, and no secret enters the log.

// Session and sign-in link lifetimes.
const (
	// MaxSessionTTL is the longest a session may be opened for.
	MaxSessionTTL = 30 * 24 * int64(time.Hour)
	// SignInLinkTTL is how long a sign-in link can be used after it is
	// created (B3).
	SignInLinkTTL = 15 * int64(time.Minute)
	// MaxSessionsPerAccount bounds an account's open sessions: opening one
	// more ends the oldest.
	MaxSessionsPerAccount = 100
	// MaxSignInLinksPerAccount bounds an account's unused, unexpired links.
	MaxSignInLinksPerAccount = 20
	maxCSRFBytes             = 128
)

// Session is a signed-in browser (B2). KeyID is the key it was opened
// with ("" for a sign-in link); revoking or rotating that key ends it.
type Session struct {
	TokenHash [32]byte `json:"token_hash"`
	AccountID string   `json:"account_id"`
	KeyID     string   `json:"key_id"`
	CSRF      string   `json:"csrf"`
	CreatedAt int64    `json:"created_at"`
	ExpiresAt int64    `json:"expires_at"`
}

// SignInLink is a one-time sign-in link (B3). UsedBy is the hash of the
// session it opened (zero while unused): a retried redeem of that session
// answers it again.
type SignInLink struct {
	LinkHash  [32]byte `json:"link_hash"`
	AccountID string   `json:"account_id"`
	CreatedAt int64    `json:"created_at"`
	ExpiresAt int64    `json:"expires_at"`
	UsedBy    [32]byte `json:"used_by"`
}

// errBadLink is every refusal of a sign-in link, unknown, used or expired
// alike: the answer gives no hint which.
var errBadLink = fmt.Errorf("%w: sign-in link is unknown, used or expired", ErrNotFound)

func validCSRF(s string) bool {
	if s == "" || len(s) > maxCSRFBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkSessionExpiry refuses a session expiry that is not after now or is
// more than MaxSessionTTL ahead.
func checkSessionExpiry(expiresAt, now int64) error {
	if expiresAt <= now || expiresAt-now > MaxSessionTTL {
		return invalid("a session must expire after now and within 30 days")
	}
	return nil
}

func (c *OpenSession) apply(l *Ledger, now int64) (Session, error) {
	if !validCSRF(c.CSRF) {
		return Session{}, invalid("csrf must be 1-128 printable ASCII characters")
	}
	if err := checkSessionExpiry(c.ExpiresAt, now); err != nil {
		return Session{}, err
	}
	a, err := l.account(c.AccountID)
	if err != nil {
		return Session{}, err
	}
	if k := l.keys[c.KeyID]; k == nil || k.AccountID != a.ID {
		return Session{}, notFound("key", c.KeyID)
	}
	want := Session{TokenHash: c.TokenHash, AccountID: a.ID, KeyID: c.KeyID, CSRF: c.CSRF, ExpiresAt: c.ExpiresAt}
	return l.openSession(want, now)
}

// openSession stores s, created now. The same session again (a retried
// command) answers the stored one; another under its hash is refused.
func (l *Ledger) openSession(s Session, now int64) (Session, error) {
	if old := l.sessions[s.TokenHash]; old != nil {
		if old.AccountID == s.AccountID && old.KeyID == s.KeyID && old.CSRF == s.CSRF && old.ExpiresAt == s.ExpiresAt {
			return *old, nil
		}
		return Session{}, conflict("session exists")
	}
	byAcct := l.sessByAcct[s.AccountID]
	if len(byAcct) >= MaxSessionsPerAccount {
		l.endSession(oldestSession(byAcct))
	}
	s.CreatedAt = now
	l.indexSession(&s)
	l.markSession(s.TokenHash)
	return s, nil
}

// oldestSession is the session created first, the smaller hash first on a
// tie, so every replica ends the same one.
func oldestSession(m map[[32]byte]*Session) *Session {
	var o *Session
	for _, s := range m {
		if o == nil || s.CreatedAt < o.CreatedAt || s.CreatedAt == o.CreatedAt && bytes.Compare(s.TokenHash[:], o.TokenHash[:]) < 0 {
			o = s
		}
	}
	return o
}

// indexSession adds a session to the maps and the expiry queue.
func (l *Ledger) indexSession(s *Session) {
	l.sessions[s.TokenHash] = s
	byAcct := l.sessByAcct[s.AccountID]
	if byAcct == nil {
		byAcct = map[[32]byte]*Session{}
		l.sessByAcct[s.AccountID] = byAcct
	}
	byAcct[s.TokenHash] = s
	l.queueExpiry(expiryEntry{at: s.ExpiresAt, kind: expirySession, hash: s.TokenHash})
}

func (l *Ledger) endSession(s *Session) {
	delete(l.sessions, s.TokenHash)
	if byAcct := l.sessByAcct[s.AccountID]; byAcct != nil {
		delete(byAcct, s.TokenHash)
		if len(byAcct) == 0 {
			delete(l.sessByAcct, s.AccountID)
		}
	}
	l.markSession(s.TokenHash)
	l.compactExpiries()
}

// endKeySessions ends the sessions opened with a key that was revoked or
// rotated (B2).
func (l *Ledger) endKeySessions(k *Key) {
	for _, s := range l.sessByAcct[k.AccountID] {
		if s.KeyID == k.ID {
			l.endSession(s)
		}
	}
}

func (c *EndSession) apply(l *Ledger, _ int64) (None, error) {
	if s := l.sessions[c.TokenHash]; s != nil {
		l.endSession(s)
	}
	return None{}, nil
}

func (c *CreateSignInLink) apply(l *Ledger, now int64) (None, error) {
	a, err := l.account(c.AccountID)
	if err != nil {
		return None{}, err
	}
	if c.ExpiresAt <= now || c.ExpiresAt-now > SignInLinkTTL {
		return None{}, invalid("a sign-in link must expire after now and within 15 minutes")
	}
	if old := l.links[c.LinkHash]; old != nil {
		if old.AccountID == a.ID && old.ExpiresAt == c.ExpiresAt {
			return None{}, nil // a retried command
		}
		return None{}, conflict("sign-in link exists")
	}
	n := 0
	for _, k := range l.links {
		if k.AccountID == a.ID && k.UsedBy == ([32]byte{}) {
			n++
		}
	}
	if n >= MaxSignInLinksPerAccount {
		return None{}, conflict("an account has at most %d unused sign-in links", MaxSignInLinksPerAccount)
	}
	k := &SignInLink{LinkHash: c.LinkHash, AccountID: a.ID, CreatedAt: now, ExpiresAt: c.ExpiresAt}
	l.links[k.LinkHash] = k
	l.markLink(k.LinkHash)
	l.queueExpiry(expiryEntry{at: k.ExpiresAt, kind: expiryLink, hash: k.LinkHash})
	return None{}, nil
}

func (c *RedeemSignInLink) apply(l *Ledger, now int64) (Session, error) {
	if !validCSRF(c.CSRF) {
		return Session{}, invalid("csrf must be 1-128 printable ASCII characters")
	}
	if err := checkSessionExpiry(c.ExpiresAt, now); err != nil {
		return Session{}, err
	}
	k := l.links[c.LinkHash]
	if k == nil || now >= k.ExpiresAt || l.accounts[k.AccountID] == nil {
		return Session{}, errBadLink
	}
	if k.UsedBy != ([32]byte{}) {
		// Used: only a retry of the redeem that used it gets its session.
		if s := l.sessions[c.TokenHash]; k.UsedBy == c.TokenHash && s != nil && s.CSRF == c.CSRF && s.ExpiresAt == c.ExpiresAt {
			return *s, nil
		}
		return Session{}, errBadLink
	}
	s, err := l.openSession(Session{TokenHash: c.TokenHash, AccountID: k.AccountID, CSRF: c.CSRF, ExpiresAt: c.ExpiresAt}, now)
	if err != nil {
		return Session{}, err
	}
	k.UsedBy = c.TokenHash
	l.markLink(k.LinkHash)
	return s, nil
}

// hashOf reads the 64 hex digits of a sess/ or link/ record's id (the
// zero hash, which names no record, when they are not).
func hashOf(id string) [32]byte {
	var h [32]byte
	if b, err := hex.DecodeString(id); err == nil && len(b) == 32 {
		copy(h[:], b)
	}
	return h
}

func (l *Ledger) markSession(h [32]byte) { l.dirty["sess/"+hex.EncodeToString(h[:])] = struct{}{} }
func (l *Ledger) markLink(h [32]byte)    { l.dirty["link/"+hex.EncodeToString(h[:])] = struct{}{} }

// ActiveSessions counts the sessions that have not expired at now (the
// node's metrics read it at scrape time).
func (l *Ledger) ActiveSessions(now int64) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := 0
	for _, s := range l.sessions {
		if now < s.ExpiresAt {
			n++
		}
	}
	return n
}

// Session returns the session a token hash names, if it exists and has
// not expired at now (it is valid while now < ExpiresAt).
func (l *Ledger) Session(tokenHash [32]byte, now int64) (Session, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s := l.sessions[tokenHash]
	if s == nil || now >= s.ExpiresAt {
		return Session{}, false
	}
	return *s, true
}
