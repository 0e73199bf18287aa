package filesync

import (
	"strings"
	"testing"
)

func TestFilterMatching(t *testing.T) {
	for _, tc := range []struct {
		rules    []string
		path     string
		dir      bool
		side     Side
		excluded bool
	}{
		{[]string{"- *.o"}, "a.o", false, Sender, true},
		{[]string{"- *.o"}, "x/y/a.o", false, Sender, true},
		{[]string{"- *.o"}, "a.oo", false, Sender, false},
		{[]string{"- build/"}, "build", true, Sender, true},
		{[]string{"- build/"}, "build", false, Sender, false},
		{[]string{"- /top"}, "top", false, Sender, true},
		{[]string{"- /top"}, "sub/top", false, Sender, false},
		{[]string{"- a/b"}, "x/a/b", false, Sender, true}, // rsync: unanchored
		{[]string{"- a/b"}, "xa/b", false, Sender, false},
		{[]string{"- a/**/z"}, "a/z", false, Sender, true},
		{[]string{"- a/**/z"}, "a/b/c/z", false, Sender, true},
		{[]string{"- **/z"}, "z", false, Sender, true},
		{[]string{"- dir/***"}, "dir", true, Sender, true},
		{[]string{"- dir/***"}, "dir/a/b", false, Sender, true},
		{[]string{"- dir/***"}, "dirx", true, Sender, false},
		{[]string{"- f?le[0-9]"}, "file7", false, Sender, true},
		{[]string{"- f?le[!0-9]"}, "file7", false, Sender, false},
		{[]string{"- [[:digit:]]*"}, "9lives", false, Sender, true},
		{[]string{`- \*literal`}, "*literal", false, Sender, true},
		{[]string{`- \*literal`}, "xliteral", false, Sender, false},
		{[]string{"+ keep.o", "- *.o"}, "keep.o", false, Sender, false},
		{[]string{"- *.o", "+ keep.o"}, "keep.o", false, Sender, true}, // first match wins
		{[]string{"- *.o", "!", "- *.c"}, "a.o", false, Sender, false}, // clear
		{[]string{"exclude,s *.o"}, "a.o", false, Receiver, false},
		{[]string{"-r *.o"}, "a.o", false, Receiver, true},
		{[]string{"P *.o"}, "a.o", false, Sender, false},
		{[]string{"protect *.o"}, "a.o", false, Receiver, true},
		{[]string{"H *.o"}, "a.o", false, Sender, true},
		{[]string{"H *.o"}, "a.o", false, Receiver, false},
		{[]string{"-! *.go"}, "main.c", false, Sender, true},
		{[]string{"-! *.go"}, "main.go", false, Sender, false},
		{[]string{"-_*.o"}, "a.o", false, Sender, true},
	} {
		f, err := ParseFilter(tc.rules)
		if err != nil {
			t.Errorf("%q: %v", tc.rules, err)
			continue
		}
		if got := f.Excluded(tc.path, tc.dir, tc.side); got != tc.excluded {
			t.Errorf("%q side %d: Excluded(%q, dir=%v) = %v, want %v", tc.rules, tc.side, tc.path, tc.dir, got, tc.excluded)
		}
	}
}

func TestOptionsRulesGitStyle(t *testing.T) {
	f, err := ParseFilter(Options{Exclude: []string{"docs/internal", "*.log", "!keep.log", "# comment", ""}}.rules())
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"docs/internal": true, "x/docs/internal": false, // gitignore: a slash anchors
		"a.log": true, "sub/keep.log": false,
	} {
		if got := f.Excluded(path, false, Sender); got != want {
			t.Errorf("Excluded(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestParseFilterErrors(t *testing.T) {
	for _, r := range []string{"- ", "x foo", "merge f", ". f", "dir-merge a/b", ":q x", "-z x", "! x", "clear,x", "- /"} {
		if _, err := ParseFilter([]string{r}); err == nil {
			t.Errorf("ParseFilter(%q) succeeded, want an error", r)
		} else if !strings.Contains(err.Error(), r) {
			t.Errorf("ParseFilter(%q) error %q does not quote the rule", r, err)
		}
	}
	if f, err := ParseFilter([]string{"", "# comment", "; comment"}); err != nil || len(f.rules) != 0 {
		t.Errorf("blank and comment rules: %v, %d rules", err, len(f.rules))
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"- *.o", "+ /a/**/b/", ":- .gitignore", "dir-merge,-e .rsync-filter", "- [", "- [!", "- [[:alpha:]]x", `- \`, "- dir/***", "-_x", "!", "- a[\\]-]b", "P x", "- ***"} {
		f.Add(s, "a/b/c.o", "*.o\n!keep.o\n/x/\n")
	}
	f.Fuzz(func(t *testing.T, rule, p, gitignore string) {
		fl, err := ParseFilter([]string{rule})
		if err == nil {
			fl.Excluded(p, true, Sender)
			fl.Excluded(p, false, Receiver)
		}
		for _, style := range []mergeStyle{mergeRules, mergeGitExcludes, mergeIncludes} {
			rules, err := parseMergeFile(gitignore, style)
			if err != nil {
				continue
			}
			for i := range rules {
				rules[i].matches(p, false)
			}
		}
	})
}
