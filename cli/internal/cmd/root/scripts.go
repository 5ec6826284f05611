package root

// scripts are the completion scripts of `oz completion SHELL`. Each hands
// the words typed so far, the one being typed last (maybe empty), to
// `oz __complete` and offers what it prints; with nothing printed the
// shell falls back to file names (bash, zsh), as for `oz exec -- COMMAND`.
var scripts = map[string]string{
	"bash": `# bash completion for oz. Load it with: source <(oz completion bash)
_oz_complete() {
    local cur="${COMP_WORDS[COMP_CWORD]}" IFS=$'\n'
    local candidates
    candidates=$("${COMP_WORDS[0]}" ` + completeCmdName + ` "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
    COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
}
complete -o default -F _oz_complete oz
`,
	"zsh": `#compdef oz
# zsh completion for oz. Load it (after compinit) with: source <(oz completion zsh)
_oz() {
    local -a candidates
    candidates=("${(@f)$("${words[1]}" ` + completeCmdName + ` "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if [[ -n "${candidates[1]}" ]]; then
        compadd -a candidates
    else
        _files
    fi
}
compdef _oz oz
`,
	"fish": `# fish completion for oz. Load it with: oz completion fish | source
function __oz_complete
    set -l done (commandline -opc)
    set -e done[1] # oz itself
    set -l cur (commandline -ct)
    oz ` + completeCmdName + ` $done "$cur" 2>/dev/null
end
complete -c oz -f -a '(__oz_complete)'
`,
}
