package client

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
		if got := CommandLine(tc.argv); got != tc.want {
			t.Errorf("CommandLine(%q) = %s, want %s", tc.argv, got, tc.want)
		}
	}
}

func TestPythonAndInstallCommandsKeepTheirWords(t *testing.T) {
	if got, want := PythonCommand("import sys; print(sys.argv[1:])", []string{"a b", "$HOME"}), `python3 -c 'import sys; print(sys.argv[1:])' 'a b' '$HOME'`; got != want {
		t.Errorf("PythonCommand = %s, want %s", got, want)
	}
	if got, want := InstallCommand([]string{"torch", "numpy>=2"}), `python3 -m pip install torch 'numpy>=2'`; got != want {
		t.Errorf("InstallCommand = %s, want %s", got, want)
	}
}
