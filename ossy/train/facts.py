"""What the nano model knows and the words its synthetic conversations are made of.

Owns: the fact table (questions the model answers from memory), the phrasings of every kind of
request, split into phrasings for training and phrasings kept for the held-out benchmark (made of
the same words in new combinations, so a held-out prompt is new text the model can still
understand), and the pools of names (files, folders, commands) with the same split.
Does not own: assembling conversations (`ossy.train.data`).

A phrasing is a `str.format` template; `{x}` is the subject of a fact, `{a}`/`{b}` numbers,
`{dir}`/`{file}`/`{kind}`/`{command}` tool arguments.
"""

from __future__ import annotations

# kind -> (fact table {subject: answer}, sentence template of the answer)
FACTS: dict[str, tuple[dict[str, str], str]] = {
    "capital": ({
        "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
        "China": "Beijing", "Canada": "Ottawa", "Egypt": "Cairo", "Russia": "Moscow", "Peru": "Lima",
        "Kenya": "Nairobi", "Norway": "Oslo", "Sweden": "Stockholm", "Greece": "Athens", "Poland": "Warsaw",
        "Austria": "Vienna", "Portugal": "Lisbon", "Ireland": "Dublin", "Chile": "Santiago",
        "Argentina": "Buenos Aires", "Mexico": "Mexico City", "India": "New Delhi", "Thailand": "Bangkok",
        "Australia": "Canberra", "Brazil": "Brasilia", "Turkey": "Ankara", "Finland": "Helsinki",
        "Denmark": "Copenhagen", "Hungary": "Budapest", "Cuba": "Havana", "Iran": "Tehran",
        "Vietnam": "Hanoi", "Belgium": "Brussels", "Netherlands": "Amsterdam", "Switzerland": "Bern",
        "South Korea": "Seoul", "Nigeria": "Abuja", "Morocco": "Rabat", "Iceland": "Reykjavik",
        "New Zealand": "Wellington",
    }, "The capital of {x} is {y}."),
    "symbol": ({
        "gold": "Au", "silver": "Ag", "iron": "Fe", "oxygen": "O", "hydrogen": "H", "carbon": "C",
        "helium": "He", "sodium": "Na", "potassium": "K", "copper": "Cu", "lead": "Pb", "tin": "Sn",
        "nitrogen": "N", "calcium": "Ca", "zinc": "Zn", "mercury": "Hg", "neon": "Ne", "sulfur": "S",
    }, "The chemical symbol for {x} is {y}."),
    "author": ({
        "Hamlet": "Shakespeare", "Pride and Prejudice": "Austen", "War and Peace": "Tolstoy",
        "1984": "Orwell", "The Odyssey": "Homer", "Don Quixote": "Cervantes", "Faust": "Goethe",
        "Moby Dick": "Melville", "Ulysses": "Joyce", "Oliver Twist": "Dickens", "Dracula": "Stoker",
        "Frankenstein": "Shelley", "The Raven": "Poe", "Les Miserables": "Hugo",
    }, "{x} was written by {y}."),
    "color": ({
        "the sky": "blue", "grass": "green", "snow": "white", "coal": "black", "a banana": "yellow",
        "a tomato": "red", "an orange": "orange", "a lemon": "yellow", "milk": "white", "a carrot": "orange",
        "an emerald": "green", "a ruby": "red", "a sapphire": "blue", "chocolate": "brown",
    }, "The color of {x} is {y}."),
    "legs": ({
        "a spider": "8", "a dog": "4", "a cat": "4", "a bird": "2", "an ant": "6", "a horse": "4",
        "a chicken": "2", "a bee": "6", "an octopus": "8", "a cow": "4", "a duck": "2", "a beetle": "6",
    }, "{X} has {y} legs."),
    "opposite": ({
        "hot": "cold", "big": "small", "fast": "slow", "up": "down", "day": "night", "light": "dark",
        "old": "new", "open": "closed", "happy": "sad", "early": "late", "full": "empty", "high": "low",
        "hard": "soft", "left": "right", "wet": "dry", "rich": "poor", "strong": "weak", "long": "short",
    }, "The opposite of {x} is {y}."),
}

# kind -> (training phrasings, held-out phrasings)
FACT_PHRASINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "capital": (("What is the capital of {x}?", "Tell me the capital of {x}.", "capital of {x}?",
                 "Do you know the capital city of {x}?", "What city is the capital of {x}?",
                 "Name the capital of {x}.", "I need the capital of {x}.", "Which city is {x}'s capital?",
                 "What's the capital of {x}?", "{x}: what is its capital?", "Say the capital of {x}."),
                ("Which city is the capital of {x}?", "What is the capital city of {x}?",
                 "Tell me the capital city of {x}.")),
    "symbol": (("What is the chemical symbol for {x}?", "Symbol of {x}?", "Tell me the symbol for {x}.",
                "Which chemical symbol does {x} have?", "What is the symbol of {x}?", "I need the symbol for {x}.",
                "What's the chemical symbol for {x}?", "{x}: what is its symbol?", "Say the symbol of {x}."),
               ("What is the chemical symbol of {x}?", "Tell me the chemical symbol for {x}.")),
    "author": (("Who wrote {x}?", "Who is the author of {x}?", "Tell me who wrote {x}.",
                "{x} was written by whom?", "Name the author of {x}.", "I need the author of {x}.",
                "Who's the author of {x}?", "{x}: who wrote it?", "Say who wrote {x}."),
               ("Do you know who wrote {x}?", "Who is the writer of {x}?")),
    "color": (("What color is {x}?", "Tell me the color of {x}.", "What is the color of {x}?",
               "Which color does {x} have?", "Name the color of {x}.", "I need the color of {x}.",
               "What's the color of {x}?", "{x}: what color is it?", "Say the color of {x}."),
              ("Do you know what color {x} is?", "What color is {x} usually?")),
    "legs": (("How many legs does {x} have?", "Tell me how many legs {x} has.", "Number of legs of {x}?",
              "Count the legs of {x}.", "How many legs has {x} got?", "I need the number of legs of {x}.",
              "What's the number of legs of {x}?", "{x}: how many legs?", "Say how many legs {x} has."),
             ("Do you know how many legs {x} has?", "How many legs does {x} usually have?")),
    "opposite": (("What is the opposite of {x}?", "Tell me the opposite of {x}.", "Opposite of {x}?",
                  "Which word is the opposite of {x}?", "Name the opposite of {x}.", "I need the opposite of {x}.",
                  "What's the opposite of {x}?", "{x}: what is its opposite?", "Say the opposite of {x}."),
                 ("What word is the opposite of {x}?", "Do you know the opposite of {x}?")),
}

# operation -> (symbol, word, training phrasings, held-out phrasings)
ARITHMETIC_PHRASINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "+": (("What is {a} + {b}?", "Compute {a} + {b}.", "{a} + {b} = ?", "What is {a} plus {b}?",
           "Add {a} and {b}.", "Please compute {a} plus {b}.", "How much is {a} plus {b}?", "{a} plus {b}?",
           "What's {a} + {b}?", "Work out {a} + {b}.", "What is the sum of {a} and {b}?", "Solve {a} + {b}."),
          ("Calculate {a} + {b}.", "How much is {a} + {b}?", "What do you get if you add {a} and {b}?")),
    "-": (("What is {a} - {b}?", "Compute {a} - {b}.", "{a} - {b} = ?", "What is {a} minus {b}?",
           "Subtract {b} from {a}.", "Please compute {a} minus {b}.", "How much is {a} minus {b}?", "{a} minus {b}?",
           "What's {a} - {b}?", "Work out {a} - {b}.", "What is {a} take away {b}?", "Solve {a} - {b}.",
           "Take {b} away from {a}.", "What is {b} less than {a}?", "From {a}, subtract {b}."),
          ("Calculate {a} - {b}.", "How much is {a} - {b}?", "What do you get if you subtract {b} from {a}?")),
    "*": (("What is {a} * {b}?", "Compute {a} * {b}.", "{a} * {b} = ?", "What is {a} times {b}?",
           "Multiply {a} by {b}.", "Please compute {a} times {b}.", "How much is {a} times {b}?", "{a} times {b}?",
           "What's {a} * {b}?", "Work out {a} * {b}.", "What is the product of {a} and {b}?", "Solve {a} * {b}."),
          ("Calculate {a} * {b}.", "How much is {a} * {b}?", "What do you get if you multiply {a} by {b}?")),
}

DIGIT_FACT_PHRASINGS = (("Quick sums: {sums}.", "Work these out: {sums}.", "Solve each: {sums}.",
                         "Mental math: {sums}.", "What are {sums}?", "Give the results of {sums}."),
                        ("Compute each of these: {sums}.", "Answer these: {sums}."))

# (user phrasings for training, held-out phrasings, reply); the reply is the final answer
SMALL_TALK: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("Hi!", "Hello", "Hello there!", "Hey", "Hi there", "Good morning!", "Good evening"),
     ("Hey there!", "Hello!", "Good morning"), "Hello! How can I help you today?"),
    (("How are you?", "How are you doing?", "How is it going?", "How are you today?"),
     ("Hi, how are you?", "How is it going today?"), "I'm doing well, thanks for asking! What can I do for you?"),
    (("Who are you?", "What are you?", "What is your name?", "Tell me about yourself."),
     ("Who are you exactly?", "What is your name, please?"),
     "I'm nano, a small demo model with the gpt-oss architecture, trained by ossy."),
    (("What can you do?", "How can you help me?", "What are you able to do?"),
     ("What can you help me with?", "What are you able to help with?"),
     "I can chat, answer simple questions, do small sums, and use tools to look at files, "
     "run commands and check disk and memory."),
    (("Thanks!", "Thank you", "Thank you very much!", "Thanks a lot"),
     ("Thanks very much", "Thank you!"), "You're welcome!"),
    (("Bye", "Goodbye!", "See you later", "Bye for now"),
     ("Goodbye", "See you!"), "Goodbye! Have a nice day."),
)

# Words around a request, in every split (the request itself carries the split).
OPENERS = ("", "", "", "", "Please, ", "Hey, ", "Quick question: ", "Hi! ", "Hello, ", "OK. ", "Now: ")
CLOSERS = ("", "", "", "", " Thanks!", " Please.", " Thank you.", " Thanks.")

# "repeat after me": (training phrasings, held-out phrasings); {words} is copied into the answer
REPEAT_PHRASINGS = (("Repeat after me: {words}", "Say this: {words}", "Please repeat: {words}",
                     "Echo back: {words}", "Repeat this exactly: {words}", "Copy this: {words}"),
                    ("Can you repeat this: {words}", "Say back to me: {words}"))

# developer instruction -> the fact / arithmetic answer style it asks for
INSTRUCTIONS = {
    "one_word": ("Answer in one word.", "Reply with a single word.", "Use only one word in your answer."),
    "number_only": ("Reply with only the number.", "Answer with just the number.", "Only give the number."),
}

# -- tool requests ------------------------------------------------------------------------------
# tool -> (training phrasings, held-out phrasings); the arguments come from the fields they use
TOOL_PHRASINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "list_directory": (("What files are in {dir}?", "List the files in {dir}.", "Show me the contents of {dir}.",
                        "What is inside the {dir} folder?", "List the {dir} directory.",
                        "Which files does {dir} contain?", "What's in {dir}?", "Look inside {dir}.", "I need a listing of {dir}.",
                        "Tell me which files are in {dir}."),
                       ("Show me what files are in {dir}.", "What does the {dir} folder contain?")),
    "list_here": (("What files are here?", "List the files in this folder.", "Show me the files in the workspace.",
                   "What is in the current directory?", "List this directory.", "What's in this folder?",
                   "Which files are in the workspace?", "Tell me what files there are."),
                  ("What files are in this folder?", "Show me the contents of the current directory.")),
    "read_file": (("Read {file}.", "What does {file} say?", "Show me {file}.", "Open {file} and show it to me.",
                   "What is in the file {file}?", "Print the contents of {file}.", "What's in {file}?", "Look at {file}.",
                   "I need the contents of {file}.", "Tell me what {file} contains."),
                  ("Show me what {file} says.", "What is written in {file}?")),
    "find_files": (("Find all {kind} files.", "Which {kind} files are there?", "Search for {kind} files.",
                    "List every {kind} file in the workspace.", "Are there any {kind} files?", "Where are the {kind} files?",
                    "Look for {kind} files.", "I need a list of the {kind} files."),
                   ("Find the {kind} files in the workspace.", "Search the workspace for {kind} files.")),
    "bash": (("Run `{command}`.", "Run the command {command}", "Please execute `{command}`.",
              "Can you run {command} for me?", "Execute {command} and tell me the output.", "Run this: {command}",
              "Please run {command}.", "What does `{command}` print?"),
             ("Run {command} and show me the output.", "Please run `{command}` for me.")),
    "df": (("How much disk space is left?", "Check the disk usage.", "Is the disk full?",
            "How much free disk space do I have?", "Show the disk space.", "How full is the disk?",
            "What's the disk usage?", "Do I have enough disk space?", "Tell me the free disk space.",
            "Check the free disk space.", "How much disk is free?", "Check how much space I have left.",
            "How much room is left on the disk?"),
           ("How much space is left on the disk?", "Check how much disk space is free.")),
    "free": (("How much memory is free?", "Check the memory usage.", "How much RAM is available?",
              "Show the memory usage.", "Is there enough free memory?", "How much memory does this machine have?",
              "What's the memory usage?", "Do I have enough RAM?", "Tell me the free memory.",
              "Check the free memory.", "How much RAM is left?", "Check how much memory is available.",
              "Is any RAM free?"),
             ("How much free memory is there?", "Check how much RAM is free.")),
}

# Questions answered by running a fixed command: (training phrasings, held-out phrasings, command)
COMMAND_QUESTIONS: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("What is the current directory?", "Which directory am I in?"), ("What directory is this?",), "pwd"),
    (("What is the date on this machine?", "What date does the system show?"),
     ("What date is it on this machine?",), "date +%F"),
    (("Which Python version is installed?", "What version of Python is installed?"),
     ("What Python version do I have?",), "python3 --version"),
    (("What kernel is this machine running?", "Which kernel version is this?"),
     ("What is the kernel version?",), "uname -r"),
    (("Who am I logged in as?", "Which user am I?"), ("What is my user name?",), "whoami"),
)

FILE_KINDS = {"Python": "*.py", "Markdown": "*.md", "text": "*.txt", "JSON": "*.json", "YAML": "*.yaml",
              "CSV": "*.csv", "shell": "*.sh", "log": "*.log"}
EXTENSIONS = {"py": "Python", "md": "Markdown", "txt": "text", "json": "JSON", "yaml": "YAML", "csv": "CSV",
              "sh": "shell", "log": "log"}

# syllables of made-up names (a name's split is decided by its hash)
SYLLABLES = ("ka", "lo", "mi", "ren", "tos", "vel", "dar", "po", "qui", "zen", "bar", "fi", "gu", "hex", "jo",
             "lum", "nor", "pex", "ra", "sil", "tan", "ux", "vo", "wim", "yel", "cor", "dex", "el", "fra", "gil")

# word pools for names; (training, held-out)
NAME_WORDS = (
    ("notes", "todo", "config", "main", "report", "data", "readme", "setup", "utils", "app", "server", "client",
     "index", "test", "build", "deploy", "draft", "budget", "summary", "list", "log", "users", "tasks", "ideas",
     "recipe", "letter", "inventory", "schedule", "results", "model", "parser", "helper", "store", "cache"),
    ("plan", "agenda", "journal", "metrics", "invoice", "outline", "backup", "profile", "events", "orders"),
)
DIR_WORDS = (
    ("src", "docs", "tests", "data", "scripts", "lib", "assets", "notes", "config", "logs", "build", "examples",
     "tools", "reports", "images", "app"),
    ("drafts", "archive", "samples", "output"),
)
ECHO_WORDS = (
    ("hello", "world", "ready", "done", "ok", "test", "ping", "green", "alpha", "banana", "river", "cloud"),
    ("sunny", "orbit", "maple", "pixel"),
)
# File contents are made up of these, at random, so that an answer about a file can only come from
# reading the tool's result. {person} {day} {hour} {n} {item} {word} {words} are filled in.
CONTENT_TEMPLATES = (
    "Meeting with {person} on {day} at {hour}.", "Buy {n} {item}.", "Call {person} about the {word}.",
    "The {word} costs {n} dollars.", "{person} owes me {n} dollars.", "Deadline: {day}.", "Server port: {n}.",
    "TODO: fix the {word} bug.", "Remember the {word} on {day}.", "{words}", "{words}", "Ask {person} for the {word}.",
    "Lunch with {person} on {day}.", "Total: {n} {item}.", "Pick up {item} after work.", "Send the {word} to {person}.",
    "version {n}", "name: {word}", "owner: {person}", "{person} likes {item}.",
)
PEOPLE = ("Anna", "Sam", "Maria", "Tom", "Lena", "Omar", "Yuki", "Paul", "Nora", "Ivan", "Chen", "Sara", "Ben",
          "Lucia", "Raj", "Eva", "Karl", "Mia", "Leo", "Ada", "Hugo", "Zoe", "Max", "Ines", "Noah", "Emma")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ITEMS = ("eggs", "apples", "milk", "bread", "coffee", "tickets", "stamps", "batteries", "books", "oranges",
         "rice", "tea", "paper", "pens", "cables", "plants", "cookies", "lemons", "socks", "candles")
# user names `whoami` prints
USERS = ("root", "user", "dev", "alice", "bob", "nobody", "admin", "sam", "maria", "build")
