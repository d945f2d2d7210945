package etcdsim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
)

var _ = Describe("StateAt", func() {
	It("gives, at every past index, what Map gave then, through directory deletes, expiries, hidden keys and a directory over a file", func(ctx SpecContext) {
		seed := rand.Uint64()
		GinkgoWriter.Printf("seed %d\n", seed)
		r := rand.New(rand.NewPCG(seed, 0))
		sim := etcdsim.New()
		name := func(kind string, n int) string {
			if r.IntN(8) == 0 {
				return fmt.Sprintf("_%s%d", kind, r.IntN(n))
			}
			return fmt.Sprintf("%s%d", kind, r.IntN(n))
		}
		key := func() string { return fmt.Sprintf("/p/%s/%s/%s", name("d", 3), name("s", 3), name("k", 4)) }
		dir := func() string { return fmt.Sprintf("/p/%s", name("d", 3)) }
		// seen[i] is Map at index i, for every index the schedule reached.
		seen := map[uint64]map[string]string{sim.Index(): sim.Map("/p")}
		for range 400 {
			switch r.IntN(9) {
			case 0:
				_, _ = sim.Delete(ctx, key(), nil)
			case 1:
				_, _ = sim.Delete(ctx, dir(), &client.DeleteOptions{Recursive: true, Dir: true})
			case 2:
				_, _ = sim.Set(ctx, key(), fmt.Sprint(r.IntN(5)), &client.SetOptions{TTL: time.Duration(1+r.IntN(3)) * time.Second})
			case 3:
				sim.Advance(time.Second) // expiries, one index each
			case 4:
				_, _ = sim.Set(ctx, key(), "", &client.SetOptions{Dir: true})
			case 5:
				_, _ = sim.Set(ctx, "/q/outside", fmt.Sprint(r.IntN(5)), nil) // not under the prefix
			default:
				_, _ = sim.Set(ctx, key(), fmt.Sprint(r.IntN(5)), nil)
			}
			seen[sim.Index()] = sim.Map("/p")
		}
		Expect(len(seen)).To(BeNumerically(">", 100), "seed %d", seed)
		for i, want := range seen {
			got, err := sim.StateAt("/p", i)
			Expect(err).NotTo(HaveOccurred(), "seed %d", seed)
			Expect(got).To(Equal(want), "seed %d, index %d", seed, i)
		}
		_, err := sim.StateAt("/p", sim.Index()+1)
		Expect(err).To(MatchError(ContainSubstring("no state at index")))
	})

	It("starts over at a restore: the indexes before it belong to another history", func(ctx context.Context) {
		sim := etcdsim.New()
		_, err := sim.Set(ctx, "/p/a", "1", nil)
		Expect(err).NotTo(HaveOccurred())
		b := sim.Backup()
		_, err = sim.Set(ctx, "/p/a", "2", nil)
		Expect(err).NotTo(HaveOccurred())
		sim.Restore(b)
		Expect(sim.StateAt("/p", b.Index())).To(Equal(map[string]string{"/p/a": "1"}))
		_, err = sim.StateAt("/p", b.Index()-1)
		Expect(err).To(HaveOccurred())
		_, err = sim.Set(ctx, "/p/b", "3", nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(sim.StateAt("/p", sim.Index())).To(Equal(sim.Map("/p")))
	})
})
