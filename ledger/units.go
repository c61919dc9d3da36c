package ledger

import (
	"errors"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Amounts are integers (M1): micro-USD, micro-Flows, nano-USD per Flow
// for the rate and parts-per-million for multipliers. Nothing in the ledger
// is a float; decimals enter and leave only through ParseDecimal and Decimal.

const (
	micro         = 1_000_000
	centMicroUSD  = 10_000 // one cent in micro-USD
	maxMicroUSD   = 1_000_000_000_000 * micro
	maxMicroFlows = 1_000_000_000_000 * micro
)

// errOverflow marks an amount that does not fit the ledger's integer range.
var errOverflow = errors.New("amount out of range")

// mulDivHalfUp returns a*b/d rounded half-up, exactly, using 128-bit
// intermediates. ok is false when d is 0 or the quotient overflows uint64.
func mulDivHalfUp(a, b, d uint64) (uint64, bool) {
	if d == 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(a, b)
	var carry uint64
	lo, carry = bits.Add64(lo, d/2, 0)
	hi += carry
	if hi >= d {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, d)
	return q, true
}

// roundDivHalfUp divides a non-negative or negative n by a positive d,
// rounding half away from zero (half-up on magnitudes).
func roundDivHalfUp(n, d int64) int64 {
	if n >= 0 {
		return (n + d/2) / d
	}
	return -((-n + d/2) / d)
}

// roundToCent rounds a micro-USD amount half-up to whole cents (M1: prices,
// charges and refunds are cents).
func roundToCent(microUSD int64) int64 {
	return roundDivHalfUp(microUSD, centMicroUSD) * centMicroUSD
}

// checkedAdd adds two amounts and reports overflow instead of wrapping.
func checkedAdd(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// satAdd adds usage counters, saturating at the int64 limits instead of
// wrapping. Counters this large are unreachable by real traffic; clamping
// keeps a hostile or broken sequence of charges from stopping every
// replica with a panic, and it is deterministic.
func satAdd(a, b int64) int64 {
	s, ok := checkedAdd(a, b)
	if ok {
		return s
	}
	if b > 0 {
		return math.MaxInt64
	}
	return math.MinInt64 + 1
}

// mustAdd is checkedAdd for sums that validation already bounded: an
// overflow there is a broken invariant, not a rejection.
func mustAdd(a, b int64) int64 {
	s, ok := checkedAdd(a, b)
	if !ok {
		panic("ledger: integer overflow in a bounded sum")
	}
	return s
}

// ParseDecimal converts a plain decimal string ("12.5", "-0.03") into an
// integer scaled by 10^scale, exactly. It refuses exponents, more than scale
// decimals, and values whose magnitude exceeds limit.
func ParseDecimal(s string, scale int, limit int64) (int64, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	neg := false
	if s[0] == '-' {
		neg = true
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || (hasDot && frac == "") {
		return 0, errors.New("not a plain decimal number")
	}
	if len(frac) > scale {
		return 0, errors.New("too many decimals (at most " + strconv.Itoa(scale) + ")")
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return 0, errors.New("not a plain decimal number")
			}
		}
	}
	if len(intPart) > 18 {
		return 0, errOverflow
	}
	whole, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return 0, errOverflow
	}
	pow := int64(1)
	for i := 0; i < scale; i++ {
		pow *= 10
	}
	if whole > limit/pow {
		return 0, errOverflow
	}
	frac += strings.Repeat("0", scale-len(frac))
	var fracVal int64
	if frac != "" {
		fracVal, _ = strconv.ParseInt(frac, 10, 64)
	}
	v := whole*pow + fracVal
	if v > limit {
		return 0, errOverflow
	}
	if neg {
		v = -v
	}
	return v, nil
}

// Decimal formats an integer scaled by 10^scale as the shortest exact
// decimal string (trailing zeros dropped): Decimal(40_000000, 6) == "40".
func Decimal(v int64, scale int) string {
	if v == math.MinInt64 {
		panic("ledger: Decimal of MinInt64")
	}
	neg := v < 0
	if neg {
		v = -v
	}
	pow := int64(1)
	for i := 0; i < scale; i++ {
		pow *= 10
	}
	s := strconv.FormatInt(v/pow, 10)
	if f := v % pow; f != 0 {
		fs := strconv.FormatInt(f, 10)
		fs = strings.Repeat("0", scale-len(fs)) + fs
		s += "." + strings.TrimRight(fs, "0")
	}
	if neg {
		s = "-" + s
	}
	return s
}

// Micro is an amount in millionths (micro-USD or micro-Flows) that
// marshals to JSON as an exact decimal number.
type Micro int64

// MarshalJSON writes the amount as a JSON number with up to 6 decimals.
func (m Micro) MarshalJSON() ([]byte, error) { return []byte(Decimal(int64(m), 6)), nil }

// UnmarshalJSON reads a JSON number exactly (no float on the way).
func (m *Micro) UnmarshalJSON(b []byte) error {
	v, err := ParseDecimal(string(b), 6, maxMicroUSD)
	if err != nil {
		return err
	}
	*m = Micro(v)
	return nil
}

// Hundredths is a ratio in 1/100 (a value multiplier such as 1.50x) that
// marshals as a JSON number.
type Hundredths int64

// MarshalJSON writes the ratio with at most two decimals.
func (h Hundredths) MarshalJSON() ([]byte, error) { return []byte(Decimal(int64(h), 2)), nil }

// UnmarshalJSON reads the ratio back exactly.
func (h *Hundredths) UnmarshalJSON(b []byte) error {
	v, err := ParseDecimal(string(b), 2, math.MaxInt64/100)
	*h = Hundredths(v)
	return err
}
