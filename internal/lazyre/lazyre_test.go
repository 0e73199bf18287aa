package lazyre

import (
	"sync"
	"testing"
)

func TestCompiledOnceOnFirstUse(t *testing.T) {
	re := New(`^a{0,3}b$`)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if !re.MatchString("aab") || re.MatchString("aaaab") {
				t.Error("wrong match")
			}
		})
	}
	wg.Wait()
	if re.Regexp() != re.Regexp() {
		t.Fatal("compiled twice")
	}
	if got := New(`x+`).ReplaceAllString("axxb", "-"); got != "a-b" {
		t.Fatalf("replace: %q", got)
	}
}

func TestInvalidPanicsOnUse(t *testing.T) {
	re := New(`(`) // no panic here
	defer func() {
		if recover() == nil {
			t.Fatal("invalid expression matched without panicking")
		}
	}()
	re.MatchString("x")
}
