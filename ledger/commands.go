package ledger

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// CmdType is the first byte of every encoded command. 0 is reserved for
// "unknown" so that a zeroed entry can never decode as a real command.
type CmdType byte

// Command types. Values are part of the replicated log format: never
// renumber, only append.
const (
	cmdUnknown CmdType = iota
	CmdSeed
	CmdSetRate
	CmdPutPlan
	CmdPutModel
	CmdCreateAccount
	CmdSetFlowValue
	CmdSubscribe
	CmdChangePlan
	CmdCancel
	CmdCreateKey
	CmdRotateKey
	CmdRevokeKey
	CmdTopUp
	CmdSetExtra
	CmdRefundSubmit
	CmdRefundStatus
	CmdAdvanceClock
	CmdSetMember
	CmdRemoveMember
	CmdTick
	CmdChargeBatch
	CmdLeaseTokens
	CmdReturnTokens
	CmdLeaseFlows
	CmdReturnFlows
	CmdResetNode
)

// Command is one replicated operation. Its time is not part of it: Encode
// stamps the proposer's time into the envelope and Apply receives it.
type Command interface {
	Type() CmdType
}

// moneyCommand is a command that moves money: it carries an idempotency
// key and a fingerprint of the request it came from (C2, C4).
type moneyCommand interface {
	Command
	idempotency() (key, fingerprint string)
}

// Idem is embedded in every money command.
type Idem struct {
	IdemKey     string `json:"idem_key"`
	Fingerprint string `json:"fingerprint"`
}

func (i Idem) idempotency() (string, string) { return i.IdemKey, i.Fingerprint }

// Seed initialises a new cluster's replicated settings; it applies once.
type Seed struct {
	NanoUSDPerFlow int64    `json:"nano_usd_per_flow"`
	Plans          []Plan   `json:"plans"`
	Models         []Model  `json:"models"`
	DedupeDays     int      `json:"dedupe_days"`
	RequestLogDays int      `json:"request_log_days"`
	Members        []Member `json:"members"`
}

// SetRate changes usd_per_flow (M3).
type SetRate struct {
	NanoUSDPerFlow int64 `json:"nano_usd_per_flow"`
}

// PutPlan creates or replaces a plan.
type PutPlan struct{ Plan Plan }

// PutModel creates or replaces a catalog model.
type PutModel struct{ Model Model }

// CreateAccount opens an account on Free (S1); the proposer picks the id.
type CreateAccount struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// SetFlowValue sets an account's tier and multiplier (M4).
type SetFlowValue struct {
	AccountID     string `json:"account_id"`
	Tier          string `json:"tier"`
	MultiplierPPM int64  `json:"multiplier_ppm"`
}

// Subscribe starts a paid plan (S2).
type Subscribe struct {
	Idem
	AccountID string `json:"account_id"`
	Plan      string `json:"plan"`
}

// ChangePlan upgrades (S3) or schedules a downgrade (S4).
type ChangePlan struct {
	Idem
	AccountID string `json:"account_id"`
	Plan      string `json:"plan"`
}

// Cancel ends the subscription at cycle end (S5).
type Cancel struct {
	AccountID string `json:"account_id"`
}

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

// RotateKey replaces a key's secret (K2).
type RotateKey struct {
	KeyID string   `json:"key_id"`
	Hash  [32]byte `json:"hash"`
	Last4 string   `json:"last4"`
}

// RevokeKey deletes a key (K2).
type RevokeKey struct {
	KeyID string `json:"key_id"`
}

// TopUp adds to the pay-as-you-go balance (E3).
type TopUp struct {
	Idem
	AccountID string `json:"account_id"`
	MicroUSD  int64  `json:"micro_usd"`
}

// SetExtra turns Extra Usage on or off and selects its key (E1).
type SetExtra struct {
	AccountID string `json:"account_id"`
	Enabled   bool   `json:"enabled"`
	KeyID     string `json:"key_id"`
}

// RefundSubmit opens a refund (R1-R3); the proposer picks the id.
type RefundSubmit struct {
	Idem
	AccountID string `json:"account_id"`
	RefundID  string `json:"refund_id"`
}

// RefundStatus moves a refund out of processing (R3).
type RefundStatus struct {
	Idem
	RefundID string `json:"refund_id"`
	Status   string `json:"status"`
}

// AdvanceClock moves the replicated test-clock offset forward.
type AdvanceClock struct {
	Nanos int64 `json:"nanos"`
}

// SetMember records a node's addresses.
type SetMember struct{ Member Member }

// RemoveMember forgets a node's addresses.
type RemoveMember struct {
	ID string `json:"id"`
}

// Tick settles renewals and cycle ends that fell due (S5).
type Tick struct{}

// LeaseTokens takes up to Want requests from a replicated rate bucket for
// one node to spend in memory (Q8 across nodes). The bucket is GCRA state
// in the ledger, so the grants of all nodes together never exceed it.
type LeaseTokens struct {
	Bucket string `json:"bucket"` // "<account>" or "payg:<account>"
	Want   int64  `json:"want"`
	RPM    int64  `json:"rpm"`
	Burst  int64  `json:"burst"`
}

// ReturnTokens gives back leased requests a node did not spend.
type ReturnTokens struct {
	Bucket string `json:"bucket"`
	N      int64  `json:"n"`
	RPM    int64  `json:"rpm"`
}

// LeaseFlows grants a node an allowance of an account's remaining quota
// (Q4 across nodes): the allowances of all nodes together never exceed
// what the tightest window has left.
type LeaseFlows struct {
	AccountID  string `json:"account_id"`
	Node       string `json:"node"`
	MicroFlows int64  `json:"micro_flows"`
}

// ReturnFlows gives back allowance a node did not spend.
type ReturnFlows struct {
	AccountID  string `json:"account_id"`
	Node       string `json:"node"`
	MicroFlows int64  `json:"micro_flows"`
}

// leaseCommand marks the commands that add to or subtract from a shared
// amount (rate-bucket leases and Flow allowances) and carry no id: applied
// twice they count twice, so they are never re-sent after an unknown
// outcome, and their results come back in the answer rather than being
// read from local state.
type leaseCommand interface{ lease() }

func (*LeaseTokens) lease()  {}
func (*ReturnTokens) lease() {}
func (*LeaseFlows) lease()   {}
func (*ReturnFlows) lease()  {}

// IsLease reports whether cmd is a lease or return command.
func IsLease(cmd Command) bool {
	_, ok := cmd.(leaseCommand)
	return ok
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

func (*Seed) Type() CmdType          { return CmdSeed }
func (*SetRate) Type() CmdType       { return CmdSetRate }
func (*PutPlan) Type() CmdType       { return CmdPutPlan }
func (*PutModel) Type() CmdType      { return CmdPutModel }
func (*CreateAccount) Type() CmdType { return CmdCreateAccount }
func (*SetFlowValue) Type() CmdType  { return CmdSetFlowValue }
func (*Subscribe) Type() CmdType     { return CmdSubscribe }
func (*ChangePlan) Type() CmdType    { return CmdChangePlan }
func (*Cancel) Type() CmdType        { return CmdCancel }
func (*CreateKey) Type() CmdType     { return CmdCreateKey }
func (*RotateKey) Type() CmdType     { return CmdRotateKey }
func (*RevokeKey) Type() CmdType     { return CmdRevokeKey }
func (*TopUp) Type() CmdType         { return CmdTopUp }
func (*SetExtra) Type() CmdType      { return CmdSetExtra }
func (*RefundSubmit) Type() CmdType  { return CmdRefundSubmit }
func (*RefundStatus) Type() CmdType  { return CmdRefundStatus }
func (*AdvanceClock) Type() CmdType  { return CmdAdvanceClock }
func (*SetMember) Type() CmdType     { return CmdSetMember }
func (*RemoveMember) Type() CmdType  { return CmdRemoveMember }
func (*Tick) Type() CmdType          { return CmdTick }
func (*ChargeBatch) Type() CmdType   { return CmdChargeBatch }
func (*LeaseTokens) Type() CmdType   { return CmdLeaseTokens }
func (*ReturnTokens) Type() CmdType  { return CmdReturnTokens }
func (*LeaseFlows) Type() CmdType    { return CmdLeaseFlows }
func (*ReturnFlows) Type() CmdType   { return CmdReturnFlows }
func (*ResetNode) Type() CmdType     { return CmdResetNode }

// registry maps a type byte to a constructor for JSON-encoded commands.
var registry = map[CmdType]func() Command{}

func register(t CmdType, f func() Command) {
	if t == cmdUnknown {
		panic("ledger: command type 0 is reserved")
	}
	if _, dup := registry[t]; dup {
		panic(fmt.Sprintf("ledger: command type %d registered twice", t))
	}
	registry[t] = f
}

func init() {
	register(CmdSeed, func() Command { return new(Seed) })
	register(CmdSetRate, func() Command { return new(SetRate) })
	register(CmdPutPlan, func() Command { return new(PutPlan) })
	register(CmdPutModel, func() Command { return new(PutModel) })
	register(CmdCreateAccount, func() Command { return new(CreateAccount) })
	register(CmdSetFlowValue, func() Command { return new(SetFlowValue) })
	register(CmdSubscribe, func() Command { return new(Subscribe) })
	register(CmdChangePlan, func() Command { return new(ChangePlan) })
	register(CmdCancel, func() Command { return new(Cancel) })
	register(CmdCreateKey, func() Command { return new(CreateKey) })
	register(CmdRotateKey, func() Command { return new(RotateKey) })
	register(CmdRevokeKey, func() Command { return new(RevokeKey) })
	register(CmdTopUp, func() Command { return new(TopUp) })
	register(CmdSetExtra, func() Command { return new(SetExtra) })
	register(CmdRefundSubmit, func() Command { return new(RefundSubmit) })
	register(CmdRefundStatus, func() Command { return new(RefundStatus) })
	register(CmdAdvanceClock, func() Command { return new(AdvanceClock) })
	register(CmdSetMember, func() Command { return new(SetMember) })
	register(CmdRemoveMember, func() Command { return new(RemoveMember) })
	register(CmdTick, func() Command { return new(Tick) })
	register(CmdChargeBatch, func() Command { return new(ChargeBatch) })
	register(CmdLeaseTokens, func() Command { return new(LeaseTokens) })
	register(CmdReturnTokens, func() Command { return new(ReturnTokens) })
	register(CmdLeaseFlows, func() Command { return new(LeaseFlows) })
	register(CmdReturnFlows, func() Command { return new(ReturnFlows) })
	register(CmdResetNode, func() Command { return new(ResetNode) })
}

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
	var payload []byte
	if b, ok := cmd.(*ChargeBatch); ok {
		if err := b.encodable(); err != nil {
			return nil, err
		}
		payload = b.appendBinary(nil)
	} else {
		var err error
		payload, err = json.Marshal(cmd)
		if err != nil {
			panic("ledger: encode command: " + err.Error())
		}
	}
	out := make([]byte, envelopeHeader, envelopeHeader+len(payload))
	out[0] = byte(cmd.Type())
	out[1] = envelopeVersion
	if cmd.Type() == CmdChargeBatch {
		out[1] = chargeBatchVersion
	}
	binary.BigEndian.PutUint64(out[2:], uint64(nowNanos))
	return append(out, payload...), nil
}

// encodable checks the limits decodeBinary enforces.
func (cb *ChargeBatch) encodable() error {
	if len(cb.Charges) > maxBatchCharges {
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
	if version != envelopeVersion && !(CmdType(b[0]) == CmdChargeBatch && version <= chargeBatchVersion) {
		return nil, 0, fmt.Errorf("%w: version %d", ErrBadCommand, version)
	}
	ts := int64(binary.BigEndian.Uint64(b[2:]))
	if ts < 0 || ts > MaxTime {
		return nil, 0, fmt.Errorf("%w: stamped %d ns, outside 1970 to 2200", ErrBadCommand, ts)
	}
	newCmd, ok := registry[CmdType(b[0])]
	if !ok {
		return nil, 0, fmt.Errorf("%w: type %d", ErrBadCommand, b[0])
	}
	cmd := newCmd()
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

// maxBatchCharges bounds a decoded batch so a garbled count cannot make a
// replica allocate without limit.
const (
	maxBatchCharges = 100_000
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
	if r.err == nil && n > maxBatchCharges {
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
