package cli

import "testing"

func TestCommandLineQuotesSeveralWordsAndKeepsOne(t *testing.T) {
	cases := []struct {
		argv []string
		want string
	}{
		{[]string{"cd src && make"}, "cd src && make"},
		{[]string{"echo $((1+2))"}, "echo $((1+2))"},
		{[]string{"ls", "-l", "/tmp/a.b_c,d:e@f%g+h"}, "ls -l /tmp/a.b_c,d:e@f%g+h"},
		{[]string{"sh", "-c", `echo "a b"`}, `sh -c 'echo "a b"'`},
		{[]string{"printf", "%s|", "a b", "$HOME", "*", ""}, `printf '%s|' 'a b' '$HOME' '*' ''`},
		{[]string{"X=1", "env"}, `'X=1' env`}, // a command named X=1, not an assignment
		{[]string{"echo", "~", "it's"}, `echo '~' 'it'\''s'`},
	}
	for _, tc := range cases {
		if got := commandLine(tc.argv); got != tc.want {
			t.Errorf("commandLine(%q) = %s, want %s", tc.argv, got, tc.want)
		}
	}
}
