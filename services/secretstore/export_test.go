package secretstore

// OpenValue exposes the internal decrypt path to the tests of this
// package only (this file is compiled only into them).
func (s *Service) OpenValue(sec *Secret) (Plaintext, error) { return s.openValue(sec) }
