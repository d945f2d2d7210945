package supervisor

import (
	"reflect"
	"testing"
)

// Start's zero-means-default and DefaultConfig must be one set of values.
func TestDefaultConfigIsWhatStartFillsIn(t *testing.T) {
	got, err := Config{Endpoints: []string{"http://127.0.0.1:2379"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Endpoints = got.Endpoints
	// What Start makes rather than defaults.
	got.Logger, got.Observer, got.Clock, got.replay.Rand = nil, nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("withDefaults of a bare Config:\n got %+v\nwant %+v", got, want)
	}
	again, err := want.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	again.Logger, again.Observer, again.Clock, again.replay.Rand = nil, nil, nil, nil
	if !reflect.DeepEqual(again, want) {
		t.Errorf("DefaultConfig is not left as it is by withDefaults:\n got %+v\nwant %+v", again, want)
	}
}
