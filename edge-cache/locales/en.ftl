### The classroom's words in English: the classroom, the status page and
### its scrub and reports rows. English and Chinese (zh.ftl) must hold every
### key; another language's missing keys show in Chinese, then English.
### How to add a language: docs/translating.md.

# The language's own name, for the language switch.
language-name = English

skip-to-content = Skip to the content
site = shanlu classroom
courses = Courses
lessons-heading = Lessons
# After a course's other details: "12 lessons".
lesson-count =
    { $count ->
        [one] { $count } lesson
       *[other] { $count } lessons
    }
search = Search
search-placeholder = Search courses and lessons
# $query: the words the reader searched for, shown in their own language.
results-for = Results for { $query }
no-results = No courses or lessons match.

## The course list's filters and a course's details.

subject = Subject
grade = Grade
language = Language
course-subject = Subject: { $subject }
course-grade = Grade: { $grade }
all = All
filter = Filter
no-courses = There are no courses here yet.

## A lesson.

files = Files
open = Open
download = Download
offline-ready = Saved at this school
not-yet-offline = Not downloaded yet
# A lesson's length.
duration-minutes = { $minutes } min
unavailable-title = This lesson is not available offline yet
unavailable-body = The school's server cannot reach the origin right now and has not downloaded this lesson yet. Open it again when the link is back.
not-found = There is no such page.
back-to-courses = Back to the courses

## The status page, for the school's IT teacher.

status = Status
catalog = Catalog
# $at: a date and time.
published = published { $at }
withdrawn = withdrawn: { $course } ({ $at })
last-sync = Last sync
never = never
result-ok = complete
result-incomplete = incomplete: some files are missing
result-failed = failed
# $transport: QUIC or HTTPS.
sync-over = over { $transport }
fallback-used = QUIC could not connect (the network may block UDP), so this edge synced over HTTPS; it tries QUIC again later
sync-running = sync in progress
sync-now = Sync now
sync-requested = Sync asked for; it starts in a moment.
schedule = Sync windows
any-time = any time
local-time = (local time)
max-rate = bandwidth cap
no-cap = none
next-window = Next sync window opens at { $at }
stopped-at-window-end = stopped at the end of the sync window; the next window carries on
bytes-held = Course data held
disk-free = Free disk space
upstream = Origin
reachable = reachable
unreachable = unreachable
unknown = unknown
downloading = Downloading
nothing-downloading = Nothing is waiting to download.
files-held = { $held } of { $total } files
languages = Languages
languages-complete = every language is complete
# $language: the language's own name.
language-incomplete = { $language }: { $missing } of { $total } labels are not translated yet and show in Chinese
language-needs-review = { $language }: a draft, waiting for review by a native speaker

## The scrub's row: the edge re-reads what it holds to find damaged files.

scrub = Scrub
scrub-checked =
    { $files ->
        [one] { $files } file
       *[other] { $files } files
    }, { $size } checked
scrub-nothing-found = nothing found
scrub-damaged =
    { $count ->
        [one] { $count } file damaged: out of service, fetched again by the next sync
       *[other] { $count } files damaged: out of service, fetched again by the next sync
    }
scrub-under-way = Under way since { $since }:
scrub-next = Next scrub: { $at }
scrub-found = Found { $at }: { $problem }

## The reports' row: reports wait here until the link takes them upstream.

reports = Reports
reports-queued = { $count } queued
reports-forwarded = ({ $count } forwarded from edges below)
reports-set-aside = { $count } set aside after the upstream refused them (see reports/set-aside/)
reports-made = last made { $at }
reports-sent = last sent { $at }

## The teachers' page (/teach): teachers upload their own lessons.

this-school = This school
# The header link to the teachers' page.
teach-nav = Teachers
teach-title = Teachers: your own lessons
teach-name = Your name
teach-password = The school's teacher password
teach-login = Log in
teach-login-help = The school's IT teacher sets the password with `shanlu edge teachers set-password`.
teach-refused = Wrong name or password.
teach-locked = Too many wrong passwords from this device; wait a minute and try again.
# $name: the teacher's name as she gave it.
teach-signed-in = Logged in as { $name }.
teach-logout = Log out
teach-new-lesson = A new lesson
teach-lesson-title = Title
teach-files = Files
# $max: a size such as "2.0 GiB".
teach-files-help = Video (.mp4, .webm), audio (.mp3, .m4a, .ogg, .wav), PDF, pictures, subtitles (.vtt) and an HTML lesson's folder as one .zip, each at most { $max }. A broken upload goes on where it stopped.
teach-upload = Upload
teach-unfinished = Unfinished uploads
teach-my-lessons = Your lessons
teach-none-yet = You have not uploaded a lesson yet.
teach-rename = Rename
teach-remove = Remove
teach-propose = Propose to the bureau
teach-proposal-not-sent = The last sync could not send it; it tries again at the next. The reason:
teach-proposal-queued = Proposed to the bureau: it goes up with the next sync.
# $bytes: how much of it had to be sent (the bureau held the rest).
teach-proposal-sent = With the bureau for review (sent { $bytes }; the bureau had the rest).
# $course: the id of the course the bureau published it as.
teach-proposal-approved = Approved: the bureau published it for every school as course { $course }.
teach-proposal-declined = The bureau declined it, with this note:
