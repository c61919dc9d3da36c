package e2e

import "testing"

// The binary starts with a config, serves health on both listeners, and
// refuses the admin API without the token.
func TestSmokeStartHealthAuth(t *testing.T) {
	n := StartNode(t, NodeOptions{})
	for _, base := range []string{n.Proxy, n.Admin} {
		if r := Do(t, "GET", base+"/healthz", ""); r.Status != 200 {
			t.Fatalf("%s/healthz: %d", base, r.Status)
		}
	}
	r := Do(t, "GET", n.Admin+"/admin/v1/plans", "")
	if r.Status != 401 {
		t.Fatalf("no token: %d", r.Status)
	}
	Expect(t, r.JSON(t), "error.code", "unauthorized")
	r = n.AdminDo("GET", "/admin/v1/plans", "")
	Expect(t, r.JSON(t), "data.1.id", "pro", "data.1.usd_equivalent", "30.02")
}
