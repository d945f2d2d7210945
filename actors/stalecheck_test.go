package actors_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/actors"
	m "github.com/etcdsync/etcdsync/messages"
)

var _ = Describe("StaleCheck", func() {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	It("gives a member behind until Timeout to catch up, then calls it a regression", func() {
		c := actors.StaleCheck{Timeout: 30 * time.Second}
		Expect(c.Observe(t0, "a", 5, 9)).To(Succeed())
		Expect(c.Observe(t0.Add(29*time.Second), "a", 5, 9)).To(Succeed())
		Expect(c.Observe(t0.Add(30*time.Second), "a", 5, 9)).To(MatchError(m.ErrIndexRegressed))
	})

	It("starts counting again for another cluster, and not for an unknown one", func() {
		c := actors.StaleCheck{Timeout: 30 * time.Second}
		Expect(c.Observe(t0, "a", 5, 9)).To(Succeed())
		Expect(c.Observe(t0.Add(20*time.Second), "b", 5, 9)).To(Succeed())
		Expect(c.Observe(t0.Add(45*time.Second), "", 5, 9)).To(Succeed(), "25 s since b")
		Expect(c.Observe(t0.Add(50*time.Second), "", 5, 9)).To(MatchError(m.ErrIndexRegressed))
	})
})
