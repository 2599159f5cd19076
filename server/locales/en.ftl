### The fleet dashboard's words in English (`origin serve --admin`).
### English and Chinese (zh.ftl) must hold every key.
### How to add a language: docs/translating.md.

language-name = English

title = Shanlu · school edges
login = Log in
token = Admin token
login-help = Enter an admin token from `shanlu origin init` or `origin add-admin`.
login-refused = That token is wrong or was revoked.
logout = Log out
# $admin: the signed-in token's name.
signed-in-as = Administrator: { $admin }
edges = Schools
courses = Course adoption
lessons = Most-opened lessons
lessons-window = Most-opened lessons (last 30 days)
name = Name
county = County
all-counties = All counties
last-seen = Last report
never = never
reports = Reports
version = Version
catalog-lag = Catalog lag
held = Held
free = Disk free
flags = Flags
behind = behind
failing = failing
silent = silent
# Counts in the summary line.
behind-count = behind: { $count }
failing-count = failing: { $count }
silent-count = silent: { $count }
edges-count = Schools: { $count }
only-flagged = only flagged
filter = Filter
# $page of $pages; $rows: how many schools match.
page-of = page { $page } / { $pages } ({ $rows })
previous = Previous
next = Next
catalog-in-force = Catalog in force: { $sequence }
course = Course
current-version = Current version
complete = Complete
partial = Partial
older = Older
grade = Grade
all-grades = All grades
lesson = Lesson
opens = Opens
none-yet = Nothing yet.
# How long ago an edge last reported.
ago =
    { $unit ->
        [s] { $count } s ago
        [m] { $count } min ago
        [h] { $count } h ago
       *[d] { $count } d ago
    }

# Usage of lessons teachers made at their school (course `~school`).
own-lessons = A school's own lessons

## The review queue of lessons teachers proposed.
review = Teachers' lessons
review-empty = No school has proposed a lesson yet.
review-lesson = Lesson
review-school = School
review-teacher = Teacher
review-size = Size
review-received = Received
review-waiting = waiting
# $course: the id of the course it was published as.
review-approved = published as { $course }
review-declined = declined
# $school: the edge's name; $teacher: the teacher's name.
review-from = from { $school }, by { $teacher }
review-note = Note to the teacher
review-files = Files
review-approve = Approve and publish
review-decline = Decline
review-course-id = Course id
review-title = Title
review-grade = Grade
review-subject = Subject
