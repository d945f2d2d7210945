package relay

import (
	"reflect"
	"testing"
)

// New's zero-means-default and DefaultConfig must be one set of values.
func TestDefaultConfigIsWhatNewFillsIn(t *testing.T) {
	got, err := Config{Prefix: "/calico/v1"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Prefix = got.Prefix
	got.Logger = nil // what New makes rather than defaults
	if !reflect.DeepEqual(got, want) {
		t.Errorf("withDefaults of a bare Config:\n got %+v\nwant %+v", got, want)
	}
	again, err := want.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	again.Logger = nil
	if !reflect.DeepEqual(again, want) {
		t.Errorf("DefaultConfig is not left as it is by withDefaults:\n got %+v\nwant %+v", again, want)
	}
}
