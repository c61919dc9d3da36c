package payments

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// signedEvent is an event body and its Stripe-Signature header, signed as
// Stripe signs: HMAC-SHA256 of "<t>.<body>" with the endpoint's secret.
func signedEvent(id, typ, object string, secret string, at time.Time) (body, header string) {
	body = fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2020-08-27","created":%d,"type":%q,"data":{"object":%s}}`, id, at.Unix(), typ, object)
	t := fmt.Sprint(at.Unix())
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t + "." + body))
	return body, "t=" + t + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

func deliver(s *Stripe, method, body, header string) (int, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(WebhookPath)
	if header != "" {
		ctx.Request.Header.Set("Stripe-Signature", header)
	}
	ctx.Request.SetBodyString(body)
	s.Webhook(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Body())
}

// TestWebhook maps each event to its ledger command, or to nothing with
// its status: the table of what the endpoint takes and refuses.
func TestWebhook(t *testing.T) {
	now := time.Now()
	const (
		paid    = `{"id":"cs_1","object":"checkout.session","payment_status":"paid","amount_total":2000,"currency":"usd","payment_intent":"pi_7","customer":"cus_7","metadata":{"intent_id":"pay_1"}}`
		paidExp = `{"id":"cs_1","object":"checkout.session","payment_status":"paid","amount_total":2000,"currency":"usd","payment_intent":{"id":"pi_7","object":"payment_intent"},"customer":{"id":"cus_7"},"metadata":{"intent_id":"pay_1"}}`
		unpaid  = `{"id":"cs_1","object":"checkout.session","payment_status":"unpaid","amount_total":2000,"currency":"usd","metadata":{"intent_id":"pay_1"}}`
		renewPI = `{"id":"pi_1","object":"payment_intent","amount":10000,"amount_received":10000,"currency":"usd","customer":"cus_7","payment_method":"pm_7","metadata":{"intent_id":"pay_2"}}`
		failPI  = `{"id":"pi_1","object":"payment_intent","amount":10000,"amount_received":0,"currency":"usd","metadata":{"intent_id":"pay_2"}}`
		ownPI   = `{"id":"pi_9","object":"payment_intent","amount":2000,"amount_received":2000,"currency":"usd","metadata":{}}`
	)
	refund := func(status, meta string) string {
		return `{"id":"re_1","object":"refund","amount":1588,"currency":"usd","status":"` + status + `","metadata":{` + meta + `}}`
	}
	ok := `{"received":true}` + "\n"
	for _, tc := range []struct {
		name, method, typ, object, secret string
		age                               time.Duration
		tamper, noHeader, refuse, down    bool
		status                            int
		code                              string // the error's code; "" answers {"received":true}
		events                            []Event
		refunds                           []string
		anomalies                         []Anomaly
	}{
		{name: "checkout paid", typ: "checkout.session.completed", object: paid, status: 200,
			events: []Event{{EventID: "evt_x", IntentID: "pay_1", ProviderRef: "pi_7", MicroUSD: 20_000000, Currency: "usd", Outcome: OutcomeSucceeded, Customer: "cus_7"}}},
		{name: "checkout completed unpaid", typ: "checkout.session.completed", object: unpaid, status: 200},
		{name: "async payment succeeded", typ: "checkout.session.async_payment_succeeded", object: paid, status: 200,
			events: []Event{{EventID: "evt_x", IntentID: "pay_1", ProviderRef: "pi_7", MicroUSD: 20_000000, Currency: "usd", Outcome: OutcomeSucceeded, Customer: "cus_7"}}},
		{name: "async payment failed", typ: "checkout.session.async_payment_failed", object: unpaid, status: 200,
			events: []Event{{EventID: "evt_x", IntentID: "pay_1", ProviderRef: "cs_1", MicroUSD: 20_000000, Currency: "usd", Outcome: OutcomeFailed}}},
		{name: "checkout expired", typ: "checkout.session.expired", object: unpaid, status: 200,
			events: []Event{{EventID: "evt_x", IntentID: "pay_1", ProviderRef: "cs_1", MicroUSD: 20_000000, Currency: "usd", Outcome: OutcomeExpired}}},
		{name: "checkout paid, references expanded", typ: "checkout.session.completed", object: paidExp, status: 200,
			events: []Event{{EventID: "evt_x", IntentID: "pay_1", ProviderRef: "pi_7", MicroUSD: 20_000000, Currency: "usd", Outcome: OutcomeSucceeded, Customer: "cus_7"}}},
		{name: "renewal succeeded", typ: "payment_intent.succeeded", object: renewPI, status: 200,
			events: []Event{{EventID: "evt_x", IntentID: "pay_2", ProviderRef: "pi_1", MicroUSD: 100_000000, Currency: "usd", Outcome: OutcomeSucceeded, Customer: "cus_7", PaymentMethod: "pm_7"}}},
		{name: "renewal failed", typ: "payment_intent.payment_failed", object: failPI, status: 200,
			events: []Event{{EventID: "evt_x", IntentID: "pay_2", ProviderRef: "pi_1", MicroUSD: 100_000000, Currency: "usd", Outcome: OutcomeFailed}}},
		{name: "checkout's own payment intent", typ: "payment_intent.succeeded", object: ownPI, status: 200},
		{name: "refund succeeded", typ: "refund.updated", object: refund("succeeded", `"refund_id":"rf_1"`), status: 200, refunds: []string{"rf_1 succeeded"}},
		{name: "refund failed", typ: "refund.failed", object: refund("failed", `"refund_id":"rf_1"`), status: 200, refunds: []string{"rf_1 failed"}},
		{name: "refund canceled", typ: "refund.updated", object: refund("canceled", `"refund_id":"rf_1"`), status: 200, refunds: []string{"rf_1 canceled"}},
		{name: "refund pending", typ: "refund.created", object: refund("pending", `"refund_id":"rf_1"`), status: 200},
		{name: "refund of an unknown refund id", typ: "refund.updated", object: refund("succeeded", `"refund_id":"rf_9"`), status: 200,
			anomalies: []Anomaly{{EventID: "evt_x", Reason: AnomalyRefused, Detail: `refund.updated: not_found: refund "rf_9"`}}},
		{name: "refund made outside zenmux", typ: "refund.updated", object: refund("succeeded", ""), status: 200,
			anomalies: []Anomaly{{EventID: "evt_x", Reason: AnomalyUnknownRefund, Detail: "refund re_1 of 1588 cents usd was not made by zenmux"}}},
		{name: "checkout without intent", typ: "checkout.session.completed", object: `{"id":"cs_2","payment_status":"paid","amount_total":2000,"currency":"usd","metadata":{}}`, status: 200,
			anomalies: []Anomaly{{EventID: "evt_x", Reason: AnomalyNoIntent, Detail: "checkout.session.completed cs_2 names no intent_id"}}},
		{name: "ledger refuses", typ: "checkout.session.completed", object: paid, refuse: true, status: 200,
			anomalies: []Anomaly{{EventID: "evt_x", Reason: AnomalyRefused, Detail: "checkout.session.completed: " + errRefused.Error()}}},
		{name: "unknown type", typ: "customer.created", object: `{"id":"cus_1","object":"customer"}`, status: 200},
		{name: "ledger unavailable", typ: "checkout.session.completed", object: paid, down: true, status: 503, code: "unavailable"},
		{name: "4 minutes old", typ: "checkout.session.completed", object: paid, age: 4 * time.Minute, status: 200,
			events: []Event{{EventID: "evt_x", IntentID: "pay_1", ProviderRef: "pi_7", MicroUSD: 20_000000, Currency: "usd", Outcome: OutcomeSucceeded, Customer: "cus_7"}}},
		{name: "stale timestamp", typ: "checkout.session.completed", object: paid, age: 5*time.Minute + 10*time.Second, status: 400, code: "bad_signature"},
		{name: "wrong secret", typ: "checkout.session.completed", object: paid, secret: "whsec_other", status: 400, code: "bad_signature"},
		{name: "body changed after signing", typ: "checkout.session.completed", object: paid, tamper: true, status: 400, code: "bad_signature"},
		{name: "no signature", typ: "checkout.session.completed", object: paid, noHeader: true, status: 400, code: "bad_signature"},
		{name: "GET", method: "GET", typ: "checkout.session.completed", object: paid, status: 405, code: "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLedger()
			if tc.refuse {
				f.refuse = errRefused
			}
			f.down = tc.down
			f.processing = []*Refund{{ID: "rf_1", Refs: []string{"re_1"}, Parts: []RefundPart{{IntentID: "pay_1", PaymentRef: "pi_7", MicroUSD: 15_880000}}}}
			s := newDriver(t, f, "")
			secret := tc.secret
			if secret == "" {
				secret = testWebhookSecret
			}
			body, header := signedEvent("evt_x", tc.typ, tc.object, secret, now.Add(-tc.age))
			if tc.tamper {
				body = strings.Replace(body, "2000", "200000", 1)
			}
			if tc.noHeader {
				header = ""
			}
			method := tc.method
			if method == "" {
				method = "POST"
			}
			status, got := deliver(s, method, body, header)
			if status != tc.status {
				t.Errorf("status %d, want %d (%s)", status, tc.status, got)
			}
			if tc.code == "" && got != ok || tc.code != "" && !strings.HasPrefix(got, `{"error":{"code":"`+tc.code+`",`) {
				t.Errorf("body %q, want code %q", got, tc.code)
			}
			if !reflect.DeepEqual(f.events, tc.events) || !reflect.DeepEqual(f.refunds, tc.refunds) || !reflect.DeepEqual(f.anomalies, tc.anomalies) {
				t.Errorf("ledger got events %+v refunds %v anomalies %+v\nwant events %+v refunds %v anomalies %+v",
					f.events, f.refunds, f.anomalies, tc.events, tc.refunds, tc.anomalies)
			}
		})
	}
}
