//! Name, street and domain tables for the synthetic evaluation set.

/// Chinese surnames: traditional, simplified, Pinyin, Wade–Giles, Cantonese.
pub const HAN_SURNAMES: &[(&str, &str, &str, &str, &str)] = &[
    ("陳", "陈", "chen", "chen", "chan"), ("林", "林", "lin", "lin", "lam"), ("黃", "黄", "huang", "huang", "wong"),
    ("張", "张", "zhang", "chang", "cheung"), ("李", "李", "li", "li", "lee"), ("王", "王", "wang", "wang", "wong"),
    ("吳", "吴", "wu", "wu", "ng"), ("劉", "刘", "liu", "liu", "lau"), ("蔡", "蔡", "cai", "tsai", "choi"),
    ("楊", "杨", "yang", "yang", "yeung"), ("許", "许", "xu", "hsu", "hui"), ("鄭", "郑", "zheng", "cheng", "cheng"),
    ("謝", "谢", "xie", "hsieh", "tse"), ("郭", "郭", "guo", "kuo", "kwok"), ("周", "周", "zhou", "chou", "chow"),
    ("何", "何", "he", "ho", "ho"), ("梁", "梁", "liang", "liang", "leung"), ("趙", "赵", "zhao", "chao", "chiu"),
    ("葉", "叶", "ye", "yeh", "yip"), ("羅", "罗", "luo", "lo", "law"), ("高", "高", "gao", "kao", "ko"),
    ("馬", "马", "ma", "ma", "ma"), ("朱", "朱", "zhu", "chu", "chu"), ("徐", "徐", "xu", "hsu", "tsui"),
    ("歐陽", "欧阳", "ouyang", "ouyang", "auyeung"),
];

/// Given-name characters: traditional, simplified, Pinyin, Wade–Giles, Cantonese.
pub const HAN_GIVEN: &[(&str, &str, &str, &str, &str)] = &[
    ("大", "大", "da", "ta", "tai"), ("文", "文", "wen", "wen", "man"), ("小", "小", "xiao", "hsiao", "siu"),
    ("明", "明", "ming", "ming", "ming"), ("偉", "伟", "wei", "wei", "wai"), ("華", "华", "hua", "hua", "wah"),
    ("志", "志", "zhi", "chih", "chi"), ("強", "强", "qiang", "chiang", "keung"), ("美", "美", "mei", "mei", "mei"),
    ("玲", "玲", "ling", "ling", "ling"), ("麗", "丽", "li", "li", "lai"), ("家", "家", "jia", "chia", "ka"),
    ("俊", "俊", "jun", "chun", "chun"), ("傑", "杰", "jie", "chieh", "kit"), ("建", "建", "jian", "chien", "kin"),
    ("國", "国", "guo", "kuo", "kwok"), ("怡", "怡", "yi", "i", "yee"), ("婷", "婷", "ting", "ting", "ting"),
    ("雅", "雅", "ya", "ya", "nga"), ("欣", "欣", "xin", "hsin", "yan"), ("宇", "宇", "yu", "yu", "yue"),
    ("思", "思", "si", "ssu", "sze"), ("子", "子", "zi", "tzu", "tsz"), ("敏", "敏", "min", "min", "man"),
    ("慧", "慧", "hui", "hui", "wai"), ("君", "君", "jun", "chun", "kwan"), ("安", "安", "an", "an", "on"),
    ("德", "德", "de", "te", "tak"), ("天", "天", "tian", "tien", "tin"), ("浩", "浩", "hao", "hao", "ho"),
    ("榮", "荣", "rong", "jung", "wing"), ("秀", "秀", "xiu", "hsiu", "sau"), ("芳", "芳", "fang", "fang", "fong"),
    ("淑", "淑", "shu", "shu", "suk"), ("英", "英", "ying", "ying", "ying"), ("光", "光", "guang", "kuang", "kwong"),
    ("輝", "辉", "hui", "hui", "fai"), ("平", "平", "ping", "ping", "ping"), ("春", "春", "chun", "chun", "chun"),
    ("海", "海", "hai", "hai", "hoi"), ("龍", "龙", "long", "lung", "lung"), ("雲", "云", "yun", "yun", "wan"),
    ("新", "新", "xin", "hsin", "san"), ("中", "中", "zhong", "chung", "chung"),
];

/// Western given names with a nickname where common.
pub const WESTERN_GIVEN: &[(&str, Option<&str>)] = &[
    ("William", Some("Bill")), ("Robert", Some("Bob")), ("Elizabeth", Some("Liz")), ("James", Some("Jim")),
    ("Michael", Some("Mike")), ("Katherine", Some("Kate")), ("Thomas", Some("Tom")), ("Richard", Some("Rick")),
    ("Anthony", Some("Tony")), ("Jennifer", Some("Jenny")), ("Margaret", Some("Maggie")), ("Susan", Some("Sue")),
    ("Christopher", Some("Chris")), ("David", Some("Dave")), ("Daniel", Some("Dan")), ("Joseph", Some("Joe")),
    ("Samuel", Some("Sam")), ("Alexander", Some("Alex")), ("Andrew", Some("Andy")), ("Benjamin", Some("Ben")),
    ("Nicholas", Some("Nick")), ("Matthew", Some("Matt")), ("Stephen", Some("Steve")), ("Edward", Some("Ed")),
    ("Patricia", Some("Pat")), ("Deborah", Some("Debbie")), ("Victoria", Some("Vicky")), ("Jonathan", Some("Jon")),
    ("Charles", Some("Charlie")), ("Gregory", Some("Greg")), ("Jeffrey", Some("Jeff")), ("Kenneth", Some("Ken")),
    ("Timothy", Some("Tim")), ("Rebecca", Some("Becky")), ("Jessica", Some("Jess")), ("Amanda", Some("Mandy")),
    ("Mary", None), ("Linda", None), ("Barbara", None), ("Sarah", None), ("Karen", None), ("Nancy", None),
    ("Lisa", None), ("Emily", None), ("Laura", None), ("Olivia", None), ("Sophia", None), ("Emma", None),
    ("Hannah", None), ("Grace", None), ("Chloe", None), ("Zoe", None), ("Paul", None), ("Mark", None),
    ("Brian", None), ("Kevin", None), ("Jason", None), ("Ryan", None), ("Eric", None), ("Adam", None),
    ("Peter", None), ("Oliver", None), ("Henry", None), ("Lucas", None), ("Ethan", None), ("Noah", None),
    ("Isabella", None), ("Ava", None), ("Mia", None), ("Charlotte", None), ("Amelia", None), ("Harper", None),
    ("Evelyn", None), ("Abigail", None), ("Ella", None), ("Scarlett", None), ("Aria", None), ("Lily", None),
    ("Nora", None), ("Ruby", None), ("Alice", None), ("Clara", None), ("Julia", None), ("Vera", None),
    ("Hugo", None), ("Felix", None), ("Leo", None), ("Max", None), ("Oscar", None), ("Simon", None),
];

/// Western family names.
pub const WESTERN_FAMILY: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Taylor", "Moore", "Jackson", "Martin", "Thompson",
    "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
    "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz",
    "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers",
    "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim",
    "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza",
    "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster",
    "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson",
    "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton",
    "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson",
    "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison",
    "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman",
    "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez",
];

/// Street names (Latin) and Han road names.
pub const STREETS: &[&str] = &[
    "Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Lake", "Hill", "Park", "Sunset", "Queen", "King", "Nathan",
    "Hennessy", "Des Voeux", "Lockhart", "Canal", "Harbour", "Victoria", "Garden", "River", "Church", "Mill",
];
/// Han road names.
pub const HAN_ROADS: &[&str] = &[
    "信義路", "忠孝東路", "仁愛路", "中山北路", "民生東路", "復興南路", "南京東路", "和平東路", "羅斯福路",
    "彌敦道", "軒尼詩道", "皇后大道中", "南京路", "淮海中路", "人民路", "建國路", "中正路", "光復路",
];
/// Cities per region.
pub const CITIES: &[(&str, &[&str])] = &[
    ("TW", &["台北市", "新北市", "台中市", "高雄市", "台南市", "桃園市"]),
    ("HK", &["香港", "九龍", "新界"]),
    ("CN", &["上海市", "北京市", "深圳市", "廣州市", "杭州市"]),
    ("US", &["New York", "San Francisco", "Seattle", "Boston", "Austin", "Chicago"]),
];
/// Email domains.
pub const DOMAINS: &[&str] = &[
    "gmail.com", "yahoo.com.tw", "hotmail.com", "outlook.com", "netvigator.com", "qq.com", "163.com",
    "icloud.com", "hinet.net", "mail.com",
];
/// Company stems.
pub const COMPANIES: &[&str] = &[
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent", "Tyrell",
    "大同", "宏達", "長榮", "新光", "國泰", "永豐", "華興", "東方",
];
