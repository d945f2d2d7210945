package supervisor

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"
)

var _ = Describe("Backoff", func() {
	var (
		clk   *clocktesting.FakeClock
		draws []int64 // the ceilings Rand was asked for
		pick  func(n int64) int64
		b     *restartBackoff
	)

	BeforeEach(func() {
		clk = clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
		draws = nil
		pick = func(n int64) int64 { return n - 1 } // the top of the range
		b = defaultBackoff.newBackoff(clk, func(n int64) int64 { draws = append(draws, n); return pick(n) })
	})

	It("doubles its ceiling from 0.8 s up to 30 s", func() {
		var ceilings []time.Duration
		for range 8 {
			b.Next()
		}
		for _, d := range draws {
			ceilings = append(ceilings, time.Duration(d))
		}
		Expect(ceilings).To(Equal([]time.Duration{
			800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond,
			12800 * time.Millisecond, 25600 * time.Millisecond, 30 * time.Second, 30 * time.Second,
		}))
	})

	It("draws each delay uniformly from [0, ceiling): full jitter", func() {
		pick = func(int64) int64 { return 0 }
		Expect(b.Next()).To(BeZero())
		pick = func(n int64) int64 { return n / 2 }
		Expect(b.Next()).To(Equal(800 * time.Millisecond))
	})

	It("starts over after two minutes without a failure", func() {
		for range 5 {
			b.Next()
		}
		clk.Step(2*time.Minute - time.Second)
		b.Next()
		Expect(time.Duration(draws[len(draws)-1])).To(Equal(25600*time.Millisecond), "the sixth failure in a row")
		clk.Step(2 * time.Minute)
		b.Next()
		Expect(time.Duration(draws[len(draws)-1])).To(Equal(800 * time.Millisecond))
	})

	It("starts over when reset", func() {
		b.Next()
		b.Next()
		b.Reset()
		Expect(b.Ceiling()).To(Equal(800 * time.Millisecond))
	})
})
