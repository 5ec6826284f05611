package suite_test

import (
	"slices"
	"testing"

	"github.com/ozsecrets/oz/services/internal/suite"
)

func testFirstCase(t *testing.T, s *[]string) { *s = append(*s, t.Name()) }
func testSecond(t *testing.T, s *[]string)    { *s = append(*s, t.Name()) }

func TestRun(t *testing.T) {
	var seen []string
	var opened int
	suite.Run(t, func(*testing.T) *[]string { opened++; return &seen }, testFirstCase, testSecond)
	if want := []string{"TestRun/FirstCase", "TestRun/Second"}; !slices.Equal(seen, want) {
		t.Errorf("ran %q, want %q", seen, want)
	}
	if opened != 2 {
		t.Errorf("opened %d instances, want one per test (2)", opened)
	}
}

func TestNameRefusesClosures(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Name of a closure did not panic")
		}
	}()
	suite.Name(func(*testing.T, int) {})
}
