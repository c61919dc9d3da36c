package ledger

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Commands are the replicated operations. Each one is declared once, here,
// next to its struct:
//
//   - its type byte, returned by Type (part of the log format: never
//     renumber, only append; 0 is reserved so a zeroed entry never decodes
//     as a command, and define panics on a byte used twice);
//   - how it applies and what it answers: its apply method, whose result
//     type R is what proposing it returns (Propose), on the leader and,
//     read from the leader's JSON answer, on a follower;
//   - its traits, given to define.
//
// Nothing else in the repository lists command types. See DESIGN.md,
// "Adding a command".

// CmdType is the first byte of every encoded command.
type CmdType byte

// Command is one replicated operation. Its time is not part of it: Encode
// stamps the proposer's time into the envelope and apply receives it.
type Command interface {
	Type() CmdType
}

// Cmd is a command whose apply answers R.
type Cmd[R any] interface {
	Command
	apply(l *Ledger, now int64) (R, error)
}

// traits are what callers outside the ledger must know about a command.
type traits struct {
	// lease marks a command that adds to or subtracts from a shared amount
	// (rate-bucket leases, Flow allowances) and carries no id: applied
	// twice it counts twice, so it is never sent again after an unknown
	// outcome (capacity stranded, never doubled).
	lease bool
	// noLocalWait marks a command whose caller does not read, on the
	// proposing node, the state it changed: its answer carries everything.
	// A follower that forwarded it does not wait for its own apply (which
	// would add the leader's next heartbeat to every charge and lease).
	noLocalWait bool
	// beforeSeed marks a command that applies to a ledger not seeded yet.
	beforeSeed bool
	// gated marks a command earlier builds cannot decode, proposed only
	// once every member says its build reads it (cluster/format.go): the
	// one exception to "the previous release decodes every command".
	gated bool
}

// cmdDef is everything the ledger and its callers know about a command
// type, built by define from the command's struct and apply method.
type cmdDef struct {
	traits
	typ   CmdType
	name  string
	new   func() Command
	apply func(l *Ledger, cmd Command, now int64) (answer, error)
}

// defs is the command table, indexed by type byte.
var defs [256]*cmdDef

// define adds a command to the table from its apply method; the struct's
// zero value gives its type byte. It panics on a reserved or repeated byte.
func define[S any, R any, P interface {
	*S
	Cmd[R]
}](apply func(P, *Ledger, int64) (R, error), t traits) struct{} {
	typ := P(new(S)).Type()
	if typ == 0 {
		panic("ledger: command type 0 is reserved")
	}
	if defs[typ] != nil {
		panic(fmt.Sprintf("ledger: command type %d defined twice (%s, %T)", typ, defs[typ].name, new(S)))
	}
	defs[typ] = &cmdDef{
		traits: t, typ: typ, name: fmt.Sprintf("%T", *new(S)),
		new: func() Command { return P(new(S)) },
		apply: func(l *Ledger, cmd Command, now int64) (answer, error) {
			v, err := apply(cmd.(P), l, now)
			if err != nil {
				return nil, err
			}
			return value[R]{v}, nil
		},
	}
	return struct{}{}
}

// def returns a command's table entry; a command type missing from the
// table is a programming error.
func def(cmd Command) *cmdDef {
	d := defs[cmd.Type()]
	if d == nil {
		panic(fmt.Sprintf("ledger: %T (type %d) is not defined", cmd, cmd.Type()))
	}
	return d
}

// RetrySafe reports whether cmd may be sent again after an unknown outcome:
// every command carries an id the ledger dedupes on (request ids,
// idempotency keys, proposer-chosen ids) or sets a value, except leases.
func RetrySafe(cmd Command) bool { return !def(cmd).lease }

// WaitsLocalApply reports whether a follower that forwarded cmd waits until
// it has applied the entry itself before answering, so its caller reads
// its own write on this node (a key created through a follower works on
// that follower's proxy as soon as the call returns).
func WaitsLocalApply(cmd Command) bool {
	d := def(cmd)
	return !d.lease && !d.noLocalWait
}

// Gated reports whether cmd is proposed only once every member runs a
// build that decodes it, so the previous release need not decode it.
func Gated(cmd Command) bool { return def(cmd).gated }

// None is the answer of a command that answers nothing but success.
type None struct{}

// Idem is embedded in every money command: an idempotency key and a
// fingerprint of the request it came from (C2, C4). A money command's
// answer, or its refusal, is kept under the key and returned again for a
// repeat of the same request.
type Idem struct {
	IdemKey     string `json:"idem_key"`
	Fingerprint string `json:"fingerprint"`
}

func (i Idem) idempotency() (string, string) { return i.IdemKey, i.Fingerprint }

// moneyCommand is a command that embeds Idem.
type moneyCommand interface {
	Command
	idempotency() (key, fingerprint string)
}

// Seed initialises a new cluster's replicated settings; it applies once.
type Seed struct {
	NanoUSDPerFlow int64    `json:"nano_usd_per_flow"`
	Plans          []Plan   `json:"plans"`
	Models         []Model  `json:"models"`
	DedupeDays     int      `json:"dedupe_days"`
	RequestLogDays int      `json:"request_log_days"`
	Members        []Member `json:"members"`
	// LogFormat is how the new cluster logs charges (logblock.go): the
	// bootstrapping build's newest. Absent, as earlier builds seeded:
	// LogFormatEntries.
	LogFormat int `json:"log_format,omitempty"`
}

func (*Seed) Type() CmdType { return 1 }

var _ = define((*Seed).apply, traits{beforeSeed: true})

// SetRate changes usd_per_flow (M3).
type SetRate struct {
	NanoUSDPerFlow int64 `json:"nano_usd_per_flow"`
}

func (*SetRate) Type() CmdType { return 2 }

var _ = define((*SetRate).apply, traits{})

// PutPlan creates or replaces a plan.
type PutPlan struct{ Plan Plan }

func (*PutPlan) Type() CmdType { return 3 }

var _ = define((*PutPlan).apply, traits{})

// PutModel creates or replaces a catalog model.
type PutModel struct{ Model Model }

func (*PutModel) Type() CmdType { return 4 }

var _ = define((*PutModel).apply, traits{})

// CreateAccount opens an account on Free (S1); the proposer picks the id.
type CreateAccount struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

func (*CreateAccount) Type() CmdType { return 5 }

var _ = define((*CreateAccount).apply, traits{})

// SetFlowValue sets an account's tier and multiplier (M4).
type SetFlowValue struct {
	AccountID     string `json:"account_id"`
	Tier          string `json:"tier"`
	MultiplierPPM int64  `json:"multiplier_ppm"`
}

func (*SetFlowValue) Type() CmdType { return 6 }

var _ = define((*SetFlowValue).apply, traits{})

// Subscribe starts a paid plan (S2).
type Subscribe struct {
	Idem
	AccountID string `json:"account_id"`
	Plan      string `json:"plan"`
}

func (*Subscribe) Type() CmdType { return 7 }

var _ = define((*Subscribe).apply, traits{})

// ChangePlan upgrades (S3) or schedules a downgrade (S4).
type ChangePlan struct {
	Idem
	AccountID string `json:"account_id"`
	Plan      string `json:"plan"`
}

func (*ChangePlan) Type() CmdType { return 8 }

var _ = define((*ChangePlan).apply, traits{})

// Cancel ends the subscription at cycle end (S5).
type Cancel struct {
	AccountID string `json:"account_id"`
}

func (*Cancel) Type() CmdType { return 9 }

var _ = define((*Cancel).apply, traits{})

// CreateKey adds an API key; the proposer generated the secret and sends
// only its hash (K1).
type CreateKey struct {
	AccountID string   `json:"account_id"`
	KeyID     string   `json:"key_id"`
	Kind      string   `json:"kind"`
	Name      string   `json:"name"`
	Hash      [32]byte `json:"hash"`
	Last4     string   `json:"last4"`
}

func (*CreateKey) Type() CmdType { return 10 }

var _ = define((*CreateKey).apply, traits{})

// RotateKey replaces a key's secret (K2).
type RotateKey struct {
	KeyID string   `json:"key_id"`
	Hash  [32]byte `json:"hash"`
	Last4 string   `json:"last4"`
}

func (*RotateKey) Type() CmdType { return 11 }

var _ = define((*RotateKey).apply, traits{})

// RevokeKey deletes a key (K2).
type RevokeKey struct {
	KeyID string `json:"key_id"`
}

func (*RevokeKey) Type() CmdType { return 12 }

var _ = define((*RevokeKey).apply, traits{})

// TopUp adds to the pay-as-you-go balance (E3).
type TopUp struct {
	Idem
	AccountID string `json:"account_id"`
	MicroUSD  int64  `json:"micro_usd"`
}

func (*TopUp) Type() CmdType { return 13 }

var _ = define((*TopUp).apply, traits{})

// SetExtra turns Extra Usage on or off and selects its key (E1).
type SetExtra struct {
	AccountID string `json:"account_id"`
	Enabled   bool   `json:"enabled"`
	KeyID     string `json:"key_id"`
}

func (*SetExtra) Type() CmdType { return 14 }

var _ = define((*SetExtra).apply, traits{})

// RefundSubmit opens a refund (R1-R3); the proposer picks the id.
type RefundSubmit struct {
	Idem
	AccountID string `json:"account_id"`
	RefundID  string `json:"refund_id"`
}

func (*RefundSubmit) Type() CmdType { return 15 }

var _ = define((*RefundSubmit).apply, traits{})

// RefundStatus moves a refund out of processing (R3).
type RefundStatus struct {
	Idem
	RefundID string `json:"refund_id"`
	Status   string `json:"status"`
}

func (*RefundStatus) Type() CmdType { return 16 }

var _ = define((*RefundStatus).apply, traits{})

// AdvanceClock moves the replicated test-clock offset forward.
type AdvanceClock struct {
	Nanos int64 `json:"nanos"`
}

func (*AdvanceClock) Type() CmdType { return 17 }

var _ = define((*AdvanceClock).apply, traits{})

// clockView answers AdvanceClock.
type clockView struct {
	OffsetSeconds int64 `json:"offset_seconds"`
}

// SetMember records a node's addresses.
type SetMember struct{ Member Member }

func (*SetMember) Type() CmdType { return 18 }

var _ = define((*SetMember).apply, traits{beforeSeed: true})

// RemoveMember forgets a node's addresses.
type RemoveMember struct {
	ID string `json:"id"`
}

func (*RemoveMember) Type() CmdType { return 19 }

var _ = define((*RemoveMember).apply, traits{})

// Tick settles renewals and cycle ends that fell due (S5).
type Tick struct{}

func (*Tick) Type() CmdType { return 20 }

var _ = define((*Tick).apply, traits{})

// tickResult answers Tick.
type tickResult struct {
	Settled int `json:"settled"`
}

// Billing modes.
const (
	BillingSubscription = "subscription"
	BillingPayg         = "payg"
)

// Charge is one completed request's usage (Q7), identified by its request
// id (C2).
type Charge struct {
	ReqID string
	// Node is the node that admitted the request; its charge spends that
	// node's Flow allowance (LeaseFlows). Empty on a single node.
	Node             string
	AccountID        string
	KeyID            string
	Model            string
	Billing          string // subscription | payg
	ViaExtra         bool   // payg through Extra Usage (E2) rather than a payg key
	Status           string // ok | incomplete | client_closed | upstream_cut
	Estimated        bool
	AdmittedAt       int64
	InputTokens      int64
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64
	Images           int64
}

// ChargeBatch carries many charges in one Raft entry.
//
// Retry marks a batch proposed again after an unknown outcome. Request ids
// are made unique by the proxy that admits the request (node, start time,
// sequence), so a batch proposed for the first time can only repeat a
// charge its own resend applied first (Ledger.logged): only a retried batch
// needs the durable dedupe lookup. The flag travels in the entry, so every
// replica decides alike.
type ChargeBatch struct {
	Charges []Charge
	Retry   bool
}

func (*ChargeBatch) Type() CmdType { return 21 }

var _ = define((*ChargeBatch).apply, traits{noLocalWait: true})

// LeaseTokens takes up to Want requests from a replicated rate bucket for
// one node to spend in memory (Q8 across nodes). The bucket is GCRA state
// in the ledger, so the grants of all nodes together never exceed it.
type LeaseTokens struct {
	Bucket string `json:"bucket"` // "<account>" or "payg:<account>"
	Want   int64  `json:"want"`
	RPM    int64  `json:"rpm"`
	Burst  int64  `json:"burst"`
}

func (*LeaseTokens) Type() CmdType { return 22 }

var _ = define((*LeaseTokens).apply, traits{lease: true})

// ReturnTokens gives back leased requests a node did not spend.
type ReturnTokens struct {
	Bucket string `json:"bucket"`
	N      int64  `json:"n"`
	RPM    int64  `json:"rpm"`
}

func (*ReturnTokens) Type() CmdType { return 23 }

var _ = define((*ReturnTokens).apply, traits{lease: true})

// LeaseFlows grants a node an allowance of an account's remaining quota
// (Q4 across nodes): the allowances of all nodes together never exceed
// what the tightest window has left.
type LeaseFlows struct {
	AccountID  string `json:"account_id"`
	Node       string `json:"node"`
	MicroFlows int64  `json:"micro_flows"`
}

func (*LeaseFlows) Type() CmdType { return 24 }

var _ = define((*LeaseFlows).apply, traits{lease: true})

// ReturnFlows gives back allowance a node did not spend.
type ReturnFlows struct {
	AccountID  string `json:"account_id"`
	Node       string `json:"node"`
	MicroFlows int64  `json:"micro_flows"`
}

func (*ReturnFlows) Type() CmdType { return 25 }

var _ = define((*ReturnFlows).apply, traits{lease: true})

// ResetNode forgets every allowance a node holds: a node that starts has
// nothing in flight and no allowance in memory, so what the ledger still
// counts for it would be stranded.
type ResetNode struct {
	Node string `json:"node"`
}

func (*ResetNode) Type() CmdType { return 26 }

var _ = define((*ResetNode).apply, traits{noLocalWait: true})

// resetResult answers ResetNode.
type resetResult struct {
	Accounts int `json:"accounts"`
}

// OpenSession opens a browser session for an account, signed in with one
// of its keys (B2); the proposer made the token and sends only its hash.
type OpenSession struct {
	TokenHash [32]byte `json:"token_hash"`
	AccountID string   `json:"account_id"`
	KeyID     string   `json:"key_id"`
	CSRF      string   `json:"csrf"`
	ExpiresAt int64    `json:"expires_at"`
}

func (*OpenSession) Type() CmdType { return 27 }

var _ = define((*OpenSession).apply, traits{})

// EndSession ends a session (sign-out, B2); an unknown one is ended already.
type EndSession struct {
	TokenHash [32]byte `json:"token_hash"`
}

func (*EndSession) Type() CmdType { return 28 }

var _ = define((*EndSession).apply, traits{})

// CreateSignInLink records a one-time sign-in link for an account (B3);
// the proposer made the link's token and sends only its hash.
type CreateSignInLink struct {
	AccountID string   `json:"account_id"`
	LinkHash  [32]byte `json:"link_hash"`
	ExpiresAt int64    `json:"expires_at"`
}

func (*CreateSignInLink) Type() CmdType { return 29 }

var _ = define((*CreateSignInLink).apply, traits{})

// RedeemSignInLink uses a sign-in link once and opens a session with it,
// in one step (B3).
type RedeemSignInLink struct {
	LinkHash  [32]byte `json:"link_hash"`
	TokenHash [32]byte `json:"token_hash"`
	CSRF      string   `json:"csrf"`
	ExpiresAt int64    `json:"expires_at"`
}

func (*RedeemSignInLink) Type() CmdType { return 30 }

var _ = define((*RedeemSignInLink).apply, traits{})

// RequestPlanChange records a subscriber's request to subscribe, change
// plan or cancel, for the operator to confirm or reject (B4); the proposer
// picks the id.
type RequestPlanChange struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Action    string `json:"action"`
	Plan      string `json:"plan"`
}

func (*RequestPlanChange) Type() CmdType { return 31 }

var _ = define((*RequestPlanChange).apply, traits{})

// DecidePlanRequest confirms a pending plan request, applying it as
// Subscribe, ChangePlan or Cancel in the same step, or rejects it (B4).
type DecidePlanRequest struct {
	Idem
	ID      string `json:"id"`
	Confirm bool   `json:"confirm"`
}

func (*DecidePlanRequest) Type() CmdType { return 32 }

var _ = define((*DecidePlanRequest).apply, traits{})

// Envelope: type byte, version byte, proposer time (8 bytes, big endian),
// payload. Version 1 payloads are JSON, except ChargeBatch which is a
// compact binary form because it is the hot, high-volume command.
const (
	envelopeVersion = 1
	// chargeBatchVersion 3 starts with a flags byte (Retry); version 2 adds
	// each charge's admitting node. Versions 1 and 2 still decode, as
	// retries (the safe reading).
	chargeBatchVersion = 3
	envelopeHeader     = 10
)

// ErrTooLarge refuses a command that replicas could not decode; it is
// caught before it reaches the log, where it would stop every replica.
var ErrTooLarge = errors.New("command too large")

// Encode serialises a command stamped with the proposer's time.
func Encode(cmd Command, nowNanos int64) ([]byte, error) {
	if nowNanos < 0 || nowNanos > MaxTime {
		return nil, fmt.Errorf("%w: stamped %d ns, outside 1970 to 2200", ErrBadCommand, nowNanos)
	}
	header := func(out []byte, version byte) []byte {
		out = append(out, byte(cmd.Type()), version)
		return binary.BigEndian.AppendUint64(out, uint64(nowNanos))
	}
	if b, ok := cmd.(*ChargeBatch); ok {
		// The hot command: its binary form goes straight after the header.
		if err := b.encodable(); err != nil {
			return nil, err
		}
		// About 100 bytes a charge (ids, model, varints): sized once.
		return b.appendBinary(header(make([]byte, 0, envelopeHeader+16+128*len(b.Charges)), chargeBatchVersion)), nil
	}
	payload, err := json.Marshal(cmd)
	if err != nil {
		panic("ledger: encode command: " + err.Error())
	}
	return append(header(make([]byte, 0, envelopeHeader+len(payload)), envelopeVersion), payload...), nil
}

// encodable checks the limits decodeBinary enforces.
func (cb *ChargeBatch) encodable() error {
	if len(cb.Charges) > MaxBatchCharges {
		return fmt.Errorf("%w: %d charges in one batch", ErrTooLarge, len(cb.Charges))
	}
	for i := range cb.Charges {
		c := &cb.Charges[i]
		for _, s := range [...]string{c.ReqID, c.AccountID, c.KeyID, c.Model, c.Status, c.Node} {
			if len(s) > maxStringBytes {
				return fmt.Errorf("%w: a %d-byte field in charge %d", ErrTooLarge, len(s), i)
			}
		}
	}
	return nil
}

// ErrBadCommand marks a log entry that cannot be decoded. The FSM panics on
// it: a replica that skipped an entry would diverge from the others.
var ErrBadCommand = errors.New("undecodable command")

// Decode parses an encoded command and the time it was stamped with.
func Decode(b []byte) (Command, int64, error) {
	if len(b) < envelopeHeader {
		return nil, 0, fmt.Errorf("%w: %d bytes", ErrBadCommand, len(b))
	}
	version := b[1]
	if version != envelopeVersion && !(CmdType(b[0]) == (*ChargeBatch)(nil).Type() && version <= chargeBatchVersion) {
		return nil, 0, fmt.Errorf("%w: version %d", ErrBadCommand, version)
	}
	ts := int64(binary.BigEndian.Uint64(b[2:]))
	if ts < 0 || ts > MaxTime {
		return nil, 0, fmt.Errorf("%w: stamped %d ns, outside 1970 to 2200", ErrBadCommand, ts)
	}
	d := defs[b[0]]
	if d == nil {
		return nil, 0, fmt.Errorf("%w: type %d", ErrBadCommand, b[0])
	}
	cmd := d.new()
	if cb, ok := cmd.(*ChargeBatch); ok {
		if err := cb.decodeBinary(b[envelopeHeader:], version); err != nil {
			return nil, 0, err
		}
		return cb, ts, nil
	}
	if err := json.Unmarshal(b[envelopeHeader:], cmd); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	return cmd, ts, nil
}

// batchRetry is the batch flag for Retry.
const batchRetry = 1

// Charge flags in the binary form.
const (
	flagPayg = 1 << iota
	flagViaExtra
	flagEstimated
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (cb *ChargeBatch) appendBinary(b []byte) []byte {
	var batchFlags byte
	if cb.Retry {
		batchFlags |= batchRetry
	}
	b = append(b, batchFlags)
	b = binary.AppendUvarint(b, uint64(len(cb.Charges)))
	for i := range cb.Charges {
		c := &cb.Charges[i]
		b = appendString(b, c.ReqID)
		b = appendString(b, c.AccountID)
		b = appendString(b, c.KeyID)
		b = appendString(b, c.Model)
		b = appendString(b, c.Status)
		b = appendString(b, c.Node)
		var flags byte
		if c.Billing == BillingPayg {
			flags |= flagPayg
		}
		if c.ViaExtra {
			flags |= flagViaExtra
		}
		if c.Estimated {
			flags |= flagEstimated
		}
		b = append(b, flags)
		b = binary.AppendVarint(b, c.AdmittedAt)
		for _, n := range [...]int64{c.InputTokens, c.OutputTokens, c.CacheReadTokens, c.CacheWriteTokens, c.Images} {
			b = binary.AppendVarint(b, n)
		}
	}
	return b
}

// Bounds of a ChargeBatch, checked when it is encoded and when it is
// decoded, so a garbled count or length cannot make a replica allocate
// without limit. MaxBatchCharges is also the most a node may propose in
// one entry (accounting.batch_max_charges): one bound on purpose, so a
// replica accepts every batch a node may write and refuses a count none
// could have written; every batch a configuration has ever allowed fits.
const (
	MaxBatchCharges = 10_000
	maxStringBytes  = 1024
)

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad uvarint", ErrBadCommand)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", ErrBadCommand)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) || n > maxStringBytes {
		r.err = fmt.Errorf("%w: bad string length %d", ErrBadCommand, n)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) byte1() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = fmt.Errorf("%w: truncated", ErrBadCommand)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (cb *ChargeBatch) decodeBinary(b []byte, version byte) error {
	r := reader{b: b}
	cb.Retry = true
	if version >= 3 {
		cb.Retry = r.byte1()&batchRetry != 0
	}
	n := r.uvarint()
	if r.err == nil && n > MaxBatchCharges {
		return fmt.Errorf("%w: batch of %d charges", ErrBadCommand, n)
	}
	cb.Charges = make([]Charge, 0, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		var c Charge
		c.ReqID = r.str()
		c.AccountID = r.str()
		c.KeyID = r.str()
		c.Model = r.str()
		c.Status = r.str()
		if version >= 2 {
			c.Node = r.str()
		}
		flags := r.byte1()
		c.Billing = BillingSubscription
		if flags&flagPayg != 0 {
			c.Billing = BillingPayg
		}
		c.ViaExtra = flags&flagViaExtra != 0
		c.Estimated = flags&flagEstimated != 0
		c.AdmittedAt = r.varint()
		c.InputTokens = r.varint()
		c.OutputTokens = r.varint()
		c.CacheReadTokens = r.varint()
		c.CacheWriteTokens = r.varint()
		c.Images = r.varint()
		cb.Charges = append(cb.Charges, c)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, len(r.b))
	}
	return r.err
}
