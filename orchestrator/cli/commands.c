/* commands.c - every command of the CLI contract, with its help text.
 * The step families' commands (sluice-search, sluice-model, sluice-serve,
 * ...) are programs of their own, run git-style (main.c). */
#include "cli.h"

const cli_command cli_commands[] = {
    {"run", "run a pipeline",
     "usage: sluice run FILE [-p NAME=VALUE]... [--no-cache] [--jobs N] [--only ID] [--from ID]\n"
     "                  [--tag KEY=VALUE]... [--runner local|slurm] [--dry-run] [--json]\n"
     "                  [--openlineage FILE|URL] [--junit FILE] [--params FILE]...\n"
     "                  [--env-file FILE]... [--env-override]\n"
     "\n"
     "Runs the pipeline in FILE: steps start as soon as their inputs are ready, up to\n"
     "--jobs at once; unchanged steps come from the cache.\n"
     "\n"
     "  -p, --param NAME=VALUE  override a parameter (VALUE in YAML flow syntax: 3, true, [a, b])\n"
     "      --params FILE       parameter values from a YAML file (repeatable: later wins;\n"
     "                          -p wins over all); -p @FILE is the same\n"
     "      --env-file FILE     variables from a .env file, for ${env.X}, ${secret.X} and\n"
     "                          shell steps (after settings.env_file; repeatable)\n"
     "      --env-override      .env variables win over the environment's\n"
     "      --no-cache          run every step even where a cached result exists\n"
     "  -j, --jobs N            steps running at once (default: settings.jobs, else the cores)\n"
     "      --only ID           run only step ID, on the latest upstream artifacts\n"
     "      --from ID           run ID and everything downstream of it, likewise\n"
     "      --tag KEY=VALUE     record a tag with the run (a CI job id, a ticket)\n"
     "      --runner NAME       local or slurm: over settings.runner (docs/slurm.md)\n"
     "      --dry-run           say what would run, as 'sluice status' does\n"
     "      --json              one JSON event per line, for CI\n"
     "      --openlineage TO    send OpenLineage events to a file or an http(s) URL instead\n"
     "                          of settings.openlineage ('' for none)\n"
     "      --junit FILE        write each step as a JUnit test case to FILE at the end\n"
     "\n"
     "Exit status: 0 done, 1 a step failed, 2 bad input, 130 interrupted (143 by\n"
     "SIGTERM, 129 by SIGHUP).\n",
     cmd_run},
    {"validate", "check pipelines and print every error",
     "usage: sluice validate FILE... [-p NAME=VALUE]... [--params FILE]... [--env-file FILE]...\n"
     "                       [--env-override] [-q]\n"
     "\n"
     "Checks each pipeline file without running anything, against the plugins found,\n"
     "and prints every error in one pass as FILE:LINE:COL: error: MESSAGE. A step no\n"
     "plugin provides is an error. Exits 0 when all are valid, 2 otherwise.\n"
     "\n"
     "  -p, --param NAME=VALUE  check with this parameter override\n"
     "      --params FILE       parameter values from a YAML file (repeatable: later wins;\n"
     "                          -p wins over all); -p @FILE is the same\n"
     "      --env-file FILE     variables from a .env file, for ${env.X}, ${secret.X} and\n"
     "                          shell steps (after settings.env_file; repeatable)\n"
     "      --env-override      .env variables win over the environment's\n"
     "  -q, --quiet             print nothing for valid files\n",
     cmd_validate},
    {"status", "say, step by step, what a run would do and why",
     "usage: sluice status FILE [-p NAME=VALUE]... [--params FILE]... [--env-file FILE]...\n"
     "                     [--env-override] [--no-cache] [--json]\n"
     "\n"
     "For every step: would it run or come from the cache, and what changed since\n"
     "the step last ran in this pipeline (a parameter, an input, the plugin's version\n"
     "or binary, a cache_on file or variable); a step's 'when', decided as the run\n"
     "reaches it. Then each parameter's value and where it came from. Runs nothing.\n"
     "Same as 'run --dry-run'.\n"
     "\n"
     "  -p, --param NAME=VALUE  override a parameter\n"
     "      --params FILE       parameter values from a YAML file (repeatable: later wins;\n"
     "                          -p wins over all); -p @FILE is the same\n"
     "      --env-file FILE     variables from a .env file, for ${env.X}, ${secret.X} and\n"
     "                          shell steps (after settings.env_file; repeatable)\n"
     "      --env-override      .env variables win over the environment's\n",
     cmd_status},
    {"graph", "print the pipeline's DAG",
     "usage: sluice graph FILE [--format dot|mermaid|json] [-p NAME=VALUE]... [--run RUN]\n"
     "\n"
     "Prints the steps and their edges: data edges labelled with the input they feed,\n"
     "order-only edges ('after') dashed. dot is the default; pipe it to 'dot -Tsvg'.\n"
     "\n"
     "  -f, --format FORMAT     dot, mermaid or json\n"
     "  -p, --param NAME=VALUE  resolve the pipeline with this override\n"
     "  -r, --run RUN           a step with 'foreach: STEP.OUTPUT' as that run of the\n"
     "                          pipeline made it, ID[0..N-1] (without: ID[*])\n",
     cmd_graph},
    {"runs", "list runs, show one, or compare two",
     "usage: sluice runs list [--pipeline NAME] [--status S] [--tag KEY=VALUE]... [--limit N]\n"
     "                        [--json]\n"
     "       sluice runs show RUN [--json]\n"
     "       sluice runs diff RUN_A RUN_B [--json]\n"
     "\n"
     "Runs, newest first, and their steps (in the DAG's order): status, times, cache\n"
     "hits, parameters, metrics. RUN is any unique prefix of a run id, or 'latest'.\n"
     "diff lists the parameters, metrics and artifacts that differ between two runs.\n"
     "\n"
     "  --pipeline NAME    only the runs of that pipeline\n"
     "  --status S         only the runs with that status (done, failed, ...)\n"
     "  --tag KEY=VALUE    only the runs with that tag (repeatable: all must match)\n"
     "  --limit N          the newest N\n",
     cmd_runs},
    {"resume", "finish a failed, interrupted or crashed run",
     "usage: sluice resume RUN [--json] [--junit FILE]\n"
     "\n"
     "Runs RUN's pipeline file again with the same -p values and tags, reusing every\n"
     "step that finished in RUN (its outputs checked against the store) and the cache;\n"
     "what did not finish runs. RUN is any unique prefix of a run id. A run that is\n"
     "still running is refused. --junit FILE as for 'run'.\n",
     cmd_resume},
    {"artifacts", "list, show, print, export, import or forget artifacts",
     "usage: sluice artifacts list [--json]\n"
     "       sluice artifacts show ID [--json]\n"
     "       sluice artifacts cat ID\n"
     "       sluice artifacts export ID PATH [--jsonl | --format copy|jsonl]\n"
     "       sluice artifacts path ID [--type TYPE]\n"
     "       sluice artifacts import PATH --type TYPE [--name NAME] [--json]\n"
     "       sluice artifacts forget NAME|ID [--path PATH] [--json]\n"
     "\n"
     "ID is an artifact's content hash or any unique prefix of it, RUN:STEP.OUTPUT\n"
     "(RUN a run id prefix or 'latest'), or STEP.OUTPUT (from the newest run that has\n"
     "it). Reading an artifact (cat, export) checks its hash first. export into an\n"
     "existing folder writes PATH/OUTPUT, as cp does. path prints the object's path\n"
     "once its hash is checked (for external commands); with --type, ID may also be\n"
     "a step id: the newest artifact of that type the step made.\n"
     "\n"
     "import copies a file or folder into the store as an artifact of type TYPE,\n"
     "recorded as imported from PATH (gc keeps it); NAME, if given, is an ID too.\n"
     "Pipelines read it as an input \"artifact:ID\". export --jsonl writes a dataset\n"
     "in the Handbook's layout (train/test per category) as JSON Lines.\n"
     "\n"
     "forget takes imports out of the records: every import under NAME, or every\n"
     "import of artifact ID; with --path only those from PATH. An artifact nothing\n"
     "else keeps (a run that made it, a model version) loses its record, and gc\n"
     "then removes its object. Refused while runs are in progress.\n",
     cmd_artifacts},
    {"lineage", "what an artifact came from and what used it",
     "usage: sluice lineage ID [--up|--down] [--format text|dot|json]\n"
     "\n"
     "The step runs and artifacts an artifact was made from (--up), those made from it\n"
     "(--down), or both; an imported artifact says where from. ID as 'sluice\n"
     "artifacts' takes it: a hash prefix, an import's name, RUN:STEP.OUTPUT or\n"
     "STEP.OUTPUT.\n",
     cmd_lineage},
    {"plugins", "list the steps plugins provide, or describe one",
     "usage: sluice plugins list [--pipeline FILE] [--json]\n"
     "       sluice plugins describe NAME [--pipeline FILE] [--json]\n"
     "\n"
     "Plugins are found in $SLUICE_PLUGIN_PATH and in the installed plugin folder;\n"
     "--pipeline FILE adds that pipeline's 'plugins' folders. 'shell' is built in.\n",
     cmd_plugins},
    {"exec", "run one step from a task manifest on stdin (used by sluice itself)",
     "usage: sluice exec < MANIFEST\n"
     "       sluice exec --supervise PARENT_PID\n"
     "\n"
     "The child side of 'isolation: process' and of the Slurm runner: reads a task\n"
     "manifest (JSON) on stdin, runs the step, reports events on file descriptor 3.\n"
     "With --supervise: serves a run as the fork server that starts its step\n"
     "commands (see docs/cli.md), on the socket that is fd 3, where\n"
     "sluice-supervise is not installed.\n",
     cmd_exec},
    {"gc", "remove objects that no run references",
     "usage: sluice gc [--dry-run] [--wait] [--grace SECONDS]\n"
     "\n"
     "Removes the objects in the store that no artifact record names: outputs of runs\n"
     "killed between storing an output and recording it. --dry-run only lists them.\n"
     "Refuses while runs are in progress (--wait waits for them); an unreferenced object\n"
     "stored less than --grace seconds ago (default 3600) is kept.\n",
     cmd_gc},
    {"doctor", "check the store: metadata, objects, records",
     "usage: sluice doctor [--rebuild]\n\nChecks the metadata file, every object against its hash "
     "and every record against\nthe objects; exits 0 when all is well, 1 when it lists problems. "
     "--rebuild makes\nnew metadata from runs/ and objects/ when the metadata cannot be read.\n",
     cmd_doctor},
    {"models", "the model registry: versions, aliases, gated promotion",
     "usage: sluice models list [NAME] [--json]\n"
     "       sluice models show NAME[@VERSION|@ALIAS] [--json]\n"
     "       sluice models promote NAME@VERSION ALIAS [--if 'METRIC<=VALUE']...\n"
     "                             [--better-than ALIAS:METRIC[:lower|:higher]] [--reason TEXT]\n"
     "                             [--json]\n"
     "       sluice models diff NAME@VERSION NAME@VERSION [--json]\n"
     "\n"
     "Every model a train step makes is a version of a named model (its model_name,\n"
     "else the pipeline's name). promote points ALIAS (staging, production, any name)\n"
     "at a version when every gate holds: --if on the version's metrics (<, <=, >, >=,\n"
     "==, !=), --better-than on the version ALIAS points to now (lower is better for\n"
     "loss, perplexity, error...; say :lower or :higher otherwise). A refused promotion\n"
     "names the figure and exits 1. Every alias change is kept: who, when, why.\n",
     cmd_models},
    {"report", "summarise a run for a pull request: steps, cache, metrics, against a model",
     "usage: sluice report RUN [--against NAME@ALIAS] [--format markdown|json]\n"
     "\n"
     "The run's pipeline and status, each step (state, cache hit or why it ran, time,\n"
     "error) and its metrics, as Markdown for a pull-request comment (the default) or\n"
     "as one JSON object (--format json, or --json). --against compares the run's\n"
     "metrics with those of a registered version (twin@production), each marked\n"
     "better or worse where the metric's direction is known. RUN is a unique prefix\n"
     "of a run id, or 'latest'. See docs/ci.md.\n",
     cmd_report},
    {"completion", "print a shell's completion script",
     "usage: sluice completion bash|zsh|fish\n"
     "\n"
     "Prints a script that makes the shell complete sluice's command lines: commands,\n"
     "options and their values, pipeline files, the step ids and parameters of the\n"
     "pipeline on the line, run ids, artifact names and registered models.\n"
     "\n"
     "  bash   source <(sluice completion bash)          (in ~/.bashrc)\n"
     "  zsh    source <(sluice completion zsh)           (in ~/.zshrc, after compinit)\n"
     "  fish   sluice completion fish | source           (in config.fish)\n",
     cmd_completion},
    {"schedule", "run a pipeline on a cron, an interval, a time, a commit or new data",
     "usage: sluice schedule add NAME FILE [-p NAME=VALUE]...\n"
     "                (--cron 'EXPR' [--tz ZONE] | --every DURATION | --at TIME [--tz ZONE]\n"
     "                 | --on git:REPO[@BRANCH] | --on warehouse\n"
     "                 | --on artifact:PIPELINE.STEP.OUTPUT) [--catchup none|latest|all]\n"
     "       sluice schedule list [--json]\n"
     "       sluice schedule show NAME [--json]\n"
     "       sluice schedule remove|pause|resume NAME\n"
     "       sluice schedule fire NAME [--trigger KIND] [--delivery ID] [--json]\n"
     "\n"
     "Schedules are records of the store; 'sluice scheduler' runs them. --cron takes\n"
     "5 fields (minute hour day-of-month month day-of-week) in ZONE (default: local);\n"
     "--every an interval (90s, 10m, 1h30m, 1d); --at a time (2026-12-07 10:00, with\n"
     "Z or +HH:MM, or local to ZONE). --on fires on a new commit of a branch, new\n"
     "documents in the warehouse, or a new version of another pipeline's output.\n"
     "--catchup (default latest): what to run for times missed while no scheduler\n"
     "ran. The pipeline is checked when added. 'fire' starts the pipeline now, detached\n"
     "(sluice serve's POST /hooks/NAME runs it): exit 3 no such schedule, 4 the\n"
     "delivery ID fired already, 5 paused. See docs/schedules.md.\n",
     cmd_schedule},
    {"scheduler", "run the store's schedules (one scheduler per store)",
     "usage: sluice scheduler [--once] [--poll SECONDS]\n"
     "\n"
     "Runs each schedule's pipeline as a 'sluice run' of its own when it fires, and\n"
     "records why in the run (sluice runs show). A second scheduler on one store is\n"
     "refused. Run logs go to STORE/scheduler/logs/NAME.log.\n"
     "\n"
     "  --once          fire what is due and poll the triggers once, wait for those\n"
     "                  runs, then exit (for cron jobs of the system and tests)\n"
     "  --poll SECONDS  how often triggers are polled (default 30)\n",
     cmd_scheduler},
    {"ui", "serve the dashboard: runs, DAGs, lineage, metrics, models, traces",
     "usage: sluice ui [--listen HOST:PORT|unix:PATH] [--api-key-file FILE] [LIMITS]\n"
     "\n"
     "Serves the store's dashboard in the browser (every asset in the binary, no\n"
     "network needed) and its JSON API under /api/ (docs/dashboard.md). Read-only\n"
     "unless an API key is given.\n"
     "\n"
     "  --listen ADDR         where to listen (default 127.0.0.1:8081; port 0: any free)\n"
     "  --api-key-file FILE   the key (first line) that POST requests must send as\n"
     "                        'Authorization: Bearer KEY'\n"
     "  --max-connections N   open connections at most (default 256; beyond: 503)\n"
     "  --max-header-bytes N  request line and headers (default 65536; 431 beyond)\n"
     "  --max-body-bytes N    request body (default 1048576; 413 beyond)\n"
     "  --header-timeout S    seconds for a request's head (default 10)\n"
     "  --body-timeout S      seconds for its body (default 30)\n"
     "  --idle-timeout S      seconds a kept-alive connection may wait (default 60)\n",
     cmd_ui},
};

const size_t cli_n_commands = sizeof(cli_commands) / sizeof(cli_commands[0]);
