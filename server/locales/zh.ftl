### 机队仪表盘的中文用语（`origin serve --admin`）。
### 中文和英文（en.ftl）必须包含全部键。
### 如何增加一种语言：见 docs/translating.md。

language-name = 中文

title = 善路 · 学校边缘节点
login = 登录
token = 管理员令牌
login-help = 输入 `shanlu origin init` 或 `origin add-admin` 给出的管理员令牌。
login-refused = 令牌不对或已被吊销。
logout = 退出
signed-in-as = 当前管理员：{ $admin }
edges = 学校
courses = 课程采用
lessons = 最常打开的课
lessons-window = 最常打开的课（最近 30 天）
name = 名称
county = 县
all-counties = 全部县
last-seen = 最近报告
never = 从未
reports = 报告数
version = 版本
catalog-lag = 目录落后
held = 已存
free = 剩余空间
flags = 状态
behind = 落后
failing = 故障
silent = 失联
behind-count = 落后：{ $count }
failing-count = 故障：{ $count }
silent-count = 失联：{ $count }
edges-count = 学校：{ $count }
only-flagged = 只看有问题的
filter = 筛选
page-of = 第 { $page } / { $pages } 页（{ $rows }）
previous = 上一页
next = 下一页
catalog-in-force = 现行目录序号：{ $sequence }
course = 课程
current-version = 现行版本
complete = 完整
partial = 部分
older = 旧版本
grade = 年级
all-grades = 全部年级
lesson = 课
opens = 打开次数
none-yet = 还没有数据。
ago =
    { $unit ->
        [s] { $count } 秒前
        [m] { $count } 分钟前
        [h] { $count } 小时前
       *[d] { $count } 天前
    }

## 教师提交的课程审核队列。
review = 教师课程
review-empty = 还没有学校提交课程。
review-lesson = 课程
review-school = 学校
review-teacher = 教师
review-size = 大小
review-received = 收到
review-waiting = 待审核
review-approved = 已发布为 { $course }
review-declined = 未通过
review-from = 来自 { $school }，{ $teacher } 提交
review-note = 给教师的说明
review-files = 文件
review-approve = 通过并发布
review-decline = 不通过
review-course-id = 课程编号
review-title = 标题
review-grade = 年级
review-subject = 科目
own-lessons = 学校自制课程
