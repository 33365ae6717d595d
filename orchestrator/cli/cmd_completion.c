/* cmd_completion.c - sluice completion bash|zsh|fish: prints a script that
 * makes the shell complete sluice's command lines. The scripts are thin:
 * each asks `sluice __complete -- WORD...` (complete.c) for the candidates
 * of the word under the cursor, and completes files itself when the answer
 * begins with ":files", ":yaml" or ":dirs". */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Bash splits words at COMP_WORDBREAKS (':' and '=' among them), which
 * would cut RUN:STEP.OUTPUT and NAME=VALUE in two: the line is split at
 * blanks here instead, and the candidates lose what bash keeps of the word
 * before its last break. */
static const char bash_script[] =
    "# sluice completion for bash: source <(sluice completion bash)\n"
    "_sluice() {\n"
    "    local line=${COMP_LINE:0:COMP_POINT} cur= reply item\n"
    "    local -a words\n"
    "    read -r -a words <<< \"$line\"\n"
    "    if [[ $line == *[[:space:]] ]]; then words+=(''); fi\n"
    "    cur=${words[${#words[@]}-1]}\n"
    "    COMPREPLY=()\n"
    "    local IFS=$'\\n'\n"
    "    for item in $(command sluice __complete -- \"${words[@]}\" 2>/dev/null); do\n"
    "        case $item in\n"
    "        :files) COMPREPLY+=($(compgen -f -- \"$cur\")); compopt -o filenames ;;\n"
    "        :dirs) COMPREPLY+=($(compgen -d -- \"$cur\")); compopt -o filenames ;;\n"
    "        :yaml) COMPREPLY+=($(compgen -d -- \"$cur\") $(compgen -f -X '!*.@(yaml|yml)' -- "
    "\"$cur\"))\n"
    "            compopt -o filenames ;;\n"
    "        *) COMPREPLY+=(\"$item\") ;;\n"
    "        esac\n"
    "    done\n"
    "    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then compopt -o nospace; fi\n"
    "    local kept=${cur##*[\"$COMP_WORDBREAKS\"]}\n"
    "    if [[ $kept != \"$cur\" ]]; then\n"
    "        local cut=${cur%\"$kept\"}\n"
    "        COMPREPLY=(\"${COMPREPLY[@]#\"$cut\"}\")\n"
    "    fi\n"
    "}\n"
    "shopt -s extglob\n"
    "complete -F _sluice sluice\n";

static const char zsh_script[] =
    "#compdef sluice\n"
    "# sluice completion for zsh: source <(sluice completion zsh) after compinit,\n"
    "# or save it as _sluice in a folder of $fpath.\n"
    "_sluice() {\n"
    "    local -a out plain nospace\n"
    "    local item\n"
    "    out=(\"${(@f)$(command sluice __complete -- \"${(@)words[1,CURRENT]}\" 2>/dev/null)}\")\n"
    "    for item in $out; do\n"
    "        case $item in\n"
    "        :files) _files ;;\n"
    "        :dirs) _files -/ ;;\n"
    "        :yaml) _files -g '*.(yaml|yml)' ;;\n"
    "        *=) nospace+=(\"$item\") ;;\n"
    "        ?*) plain+=(\"$item\") ;;\n"
    "        esac\n"
    "    done\n"
    "    (( $#plain )) && compadd -Q -- \"${plain[@]}\"\n"
    "    (( $#nospace )) && compadd -Q -S '' -- \"${nospace[@]}\"\n"
    "    return 0\n"
    "}\n"
    "if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n"
    "    _sluice \"$@\"\n"
    "else\n"
    "    compdef _sluice sluice\n"
    "fi\n";

static const char fish_script[] =
    "# sluice completion for fish: sluice completion fish | source\n"
    "function __sluice_complete\n"
    "    set -l cur (commandline -ct)\n"
    "    for item in (command sluice __complete -- (commandline -opc) $cur 2>/dev/null)\n"
    "        switch $item\n"
    "            case :files :dirs\n"
    "                __fish_complete_path $cur\n"
    "            case :yaml\n"
    "                __fish_complete_suffix .yaml\n"
    "                __fish_complete_suffix .yml\n"
    "            case '*'\n"
    "                echo $item\n"
    "        end\n"
    "    end\n"
    "end\n"
    "complete -c sluice -f -a '(__sluice_complete)'\n";

int cmd_completion(const cli_globals *g, int argc, char **argv) {
    (void)g;
    if (argc != 2) {
        fprintf(stderr, "sluice completion: name the shell: bash, zsh or fish\n");
        return EXIT_BAD_INPUT;
    }
    const char *script = strcmp(argv[1], "bash") == 0   ? bash_script
                         : strcmp(argv[1], "zsh") == 0  ? zsh_script
                         : strcmp(argv[1], "fish") == 0 ? fish_script
                                                        : NULL;
    if (!script) {
        fprintf(stderr, "sluice completion: no script for '%s' (bash, zsh or fish)\n", argv[1]);
        return EXIT_BAD_INPUT;
    }
    fputs(script, stdout);
    return EXIT_DONE;
}
