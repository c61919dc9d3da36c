package selfservice

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
	"zenmux/internal/mint"
	"zenmux/ledger"
)

// Cookie names: the session token (HttpOnly) and its CSRF token, which the
// pages' scripts read and send back as X-CSRF-Token.
const (
	sessionCookie = "zx_session"
	csrfCookie    = "zx_csrf"
	csrfHeader    = "X-CSRF-Token"
)

// caller is who a request is from: an account, and its session when it
// came with the session cookie (nil for a bearer key, which needs no CSRF
// token).
type caller struct {
	accountID string
	session   *ledger.Session
}

// tokenHash is the ledger's key of a session: the SHA-256 of the cookie's
// 32 random bytes. ok is false for a cookie that is not one.
func tokenHash(cookie []byte) (h [32]byte, ok bool) {
	var raw [32]byte
	n, err := base64.RawURLEncoding.Decode(raw[:], cookie)
	if err != nil || n != len(raw) || base64.RawURLEncoding.EncodedLen(len(raw)) != len(cookie) {
		return h, false
	}
	return sha256.Sum256(raw[:]), true
}

// bearer returns the key sent as Authorization: Bearer, if any.
func bearer(ctx *fasthttp.RequestCtx) []byte {
	h := ctx.Request.Header.Peek("Authorization")
	if len(h) > 7 && (string(h[:7]) == "Bearer " || string(h[:7]) == "bearer ") {
		return bytes.TrimSpace(h[7:])
	}
	return nil
}

// authenticate finds the caller after one read barrier, so a session or
// key ended anywhere is refused here and one opened anywhere a moment ago
// works (DESIGN.md, invariant 3). A bearer key goes first: a script sends
// no cookie. A state-changing call with the session cookie must carry its
// CSRF token.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (caller, error) {
	if err := s.store.ReadBarrier(); err != nil {
		return caller{}, apierr.NotNow(err)
	}
	if key := bearer(ctx); key != nil {
		acct, _, ok := s.store.Ledger().KeyByHash(ledger.HashSecret(string(key)))
		if !ok {
			return caller{}, fmt.Errorf("%w: the key is not valid", apierr.ErrUnauthorized)
		}
		return caller{accountID: acct}, nil
	}
	h, ok := tokenHash(ctx.Request.Header.Cookie(sessionCookie))
	if !ok {
		return caller{}, fmt.Errorf("%w: sign in, or send one of the account's keys as Authorization: Bearer <key>", apierr.ErrUnauthorized)
	}
	sess, ok := s.store.Ledger().Session(h, s.store.Now())
	if !ok {
		return caller{}, fmt.Errorf("%w: the session has ended; sign in again", apierr.ErrUnauthorized)
	}
	if !safeMethod(ctx) {
		got := ctx.Request.Header.Peek(csrfHeader)
		if len(got) == 0 || subtle.ConstantTimeCompare(got, []byte(sess.CSRF)) != 1 {
			return caller{}, fmt.Errorf("%w: a state-changing call needs the session's %s header", errCSRF, csrfHeader)
		}
	}
	return caller{accountID: sess.AccountID, session: &sess}, nil
}

// pageSession reports whether the request carries a live session: looked
// up here first, and after one read barrier when this node does not know
// it (it may have been opened a moment ago on another node).
func (s *Server) pageSession(ctx *fasthttp.RequestCtx) bool {
	h, ok := tokenHash(ctx.Request.Header.Cookie(sessionCookie))
	if !ok {
		return false
	}
	if _, ok := s.store.Ledger().Session(h, s.store.Now()); ok {
		return true
	}
	if s.store.ReadBarrier() != nil {
		return false
	}
	_, ok = s.store.Ledger().Session(h, s.store.Now())
	return ok
}

func safeMethod(ctx *fasthttp.RequestCtx) bool { return ctx.IsGet() || ctx.IsHead() }

// signInAnswer is what a sign-in answers besides its cookies.
type signInAnswer struct {
	AccountID string `json:"account_id"`
	CSRFToken string `json:"csrf_token"`
	ExpiresAt string `json:"expires_at"`
}

// signIn opens a session with one of the account's keys or a sign-in link
// the operator created. Every attempt spends the client address's bucket,
// and a key's attempt its account's; a bad key and a bad link get the same
// answer.
func (s *Server) signIn(ctx *fasthttp.RequestCtx) (any, int, error) {
	var in struct {
		Key  string `json:"key"`
		Link string `json:"link"`
	}
	if err := decodeBody(ctx, &in); err != nil {
		return nil, 0, err
	}
	if (in.Key == "") == (in.Link == "") {
		return nil, 0, fmt.Errorf("%w: send either key or link", ledger.ErrInvalid)
	}
	now := s.store.Now()
	if err := s.limit(ctx, s.byAddress, ctx.RemoteIP().String(), now); err != nil {
		return nil, 0, err
	}
	raw := mint.Bytes(32)
	token := base64.RawURLEncoding.EncodeToString(raw)
	hash := sha256.Sum256(raw)
	csrf := mint.Hex(16)
	expires := now + int64(s.ttl)
	if in.Key != "" {
		secret := ledger.HashSecret(in.Key)
		acct, keyID, ok := s.store.Ledger().KeyByHash(secret)
		if !ok {
			// Created a moment ago on another node?
			if err := s.store.ReadBarrier(); err != nil {
				return nil, 0, apierr.NotNow(err)
			}
			acct, keyID, ok = s.store.Ledger().KeyByHash(secret)
		}
		if !ok {
			return nil, 0, errBadCredentials
		}
		if err := s.limit(ctx, s.byAccount, acct, now); err != nil {
			return nil, 0, err
		}
		if _, err := ledger.Propose(s.store, &ledger.OpenSession{TokenHash: hash, AccountID: acct, KeyID: keyID, CSRF: csrf, ExpiresAt: expires}); err != nil {
			return nil, 0, credentials(err)
		}
	} else if _, err := ledger.Propose(s.store, &ledger.RedeemSignInLink{
		LinkHash: ledger.HashSecret(in.Link), TokenHash: hash, CSRF: csrf, ExpiresAt: expires,
	}); err != nil {
		return nil, 0, credentials(err)
	}
	sess, ok := s.store.Ledger().Session(hash, s.store.Now())
	if !ok {
		return nil, 0, fmt.Errorf("%w: the new session is not readable on this node yet", apierr.ErrUnavailable)
	}
	s.setCookies(ctx, token, csrf, s.ttl)
	return signInAnswer{AccountID: sess.AccountID, CSRFToken: csrf, ExpiresAt: rfc3339(expires)}, 200, nil
}

// countSignIn counts a sign-in attempt's result (Options.SignIns) and
// passes its answer on.
func (s *Server) countSignIn(v any, status int, err error) (any, int, error) {
	if s.signIns == nil {
		return v, status, err
	}
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, errCredentials):
		result = "bad_credentials"
	case errors.Is(err, errTooMany):
		result = "rate_limited"
	case errors.Is(err, ledger.ErrInvalid), errors.Is(err, errTooLarge):
		result = "invalid"
	default:
		result = "error"
	}
	s.signIns.SignIn(result)
	return v, status, err
}

// errBadCredentials is every refused key or link, with one message.
var errBadCredentials = fmt.Errorf("%w: the key or sign-in link is not valid", errCredentials)

// credentials turns the ledger's refusal of a session into the one
// invalid_credentials answer; a store error stays what it is.
func credentials(err error) error {
	if ledger.ErrorCode(err) != "" {
		return errBadCredentials
	}
	return err
}

// limit spends one attempt from name's bucket, or refuses with the whole
// seconds until the next attempt is allowed.
func (s *Server) limit(ctx *fasthttp.RequestCtx, l *limiter, name string, now int64) error {
	wait := l.take(name, now)
	if wait == 0 {
		return nil
	}
	secs := (wait + int64(time.Second) - 1) / int64(time.Second)
	ctx.Response.Header.Set("Retry-After", strconv.FormatInt(secs, 10))
	return fmt.Errorf("%w: too many sign-in attempts; retry in %d s", errTooMany, secs)
}

// signOut ends the caller's session on every node. Without a live session
// there is nothing to end: it clears the cookies and answers 204 all the
// same.
func (s *Server) signOut(ctx *fasthttp.RequestCtx) (any, int, error) {
	if err := decodeBody(ctx, &struct{}{}); err != nil {
		return nil, 0, err
	}
	c, err := s.authenticate(ctx)
	switch {
	case errors.Is(err, apierr.ErrUnauthorized):
	case err != nil:
		return nil, 0, err
	case c.session != nil:
		if _, err := ledger.Propose(s.store, &ledger.EndSession{TokenHash: c.session.TokenHash}); err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return nil, 0, err
		}
	}
	s.setCookies(ctx, "", "", 0)
	return nil, fasthttp.StatusNoContent, nil
}

// setCookies sets the session and CSRF cookies for ttl, or deletes them
// when ttl is 0.
func (s *Server) setCookies(ctx *fasthttp.RequestCtx, token, csrf string, ttl time.Duration) {
	for _, c := range [...]struct {
		name, value string
		httpOnly    bool
	}{{sessionCookie, token, true}, {csrfCookie, csrf, false}} {
		var k fasthttp.Cookie
		k.SetKey(c.name)
		k.SetValue(c.value)
		k.SetPath("/")
		k.SetHTTPOnly(c.httpOnly)
		k.SetSameSite(fasthttp.CookieSameSiteLaxMode)
		k.SetSecure(s.secure || ctx.IsTLS())
		if ttl > 0 {
			k.SetMaxAge(int(ttl / time.Second))
		} else {
			k.SetExpire(fasthttp.CookieExpireDelete)
		}
		ctx.Response.Header.SetCookie(&k)
	}
}

func rfc3339(nanos int64) string { return time.Unix(0, nanos).UTC().Format(time.RFC3339) }
