"""Who the bench clinics' patients are: regional Indian names, households sharing one phone, addresses.

Pure functions of a `random.Random`, so a fixed seed gives the same people every time. A household
registers together (consecutive MRNs): the same surname and the same family mobile, children with
a guardian, grandparents whose age is often an estimate.
"""

import random
from dataclasses import dataclass
from datetime import date, timedelta

import phonenumbers

from app.patients.services import PatientData

# region -> (languages, localities, communities: (share, male first names, female first names, surnames))
REGIONS = {
    "ka": (("kn", "kn", "kn", "en", "hi", "ta", "te"),
           ("Jayanagar 4th Block", "Basavanagudi", "JP Nagar 2nd Phase", "BTM Layout", "Banashankari 3rd Stage",
            "Wilson Garden", "Koramangala 6th Block", "HSR Layout Sector 2"),
           ((1.0, "Manjunath Ramesh Suresh Shivakumar Nagaraj Prakash Girish Harish Mahesh Anil Sunil Vinay Praveen "
                  "Kiran Ravi Mohan Shankar Yashas Darshan Tejas Akshay Venkatesh Raghavendra Srinivas Chandru",
             "Lakshmi Savitha Kavya Pooja Rakshitha Chaitra Shilpa Deepa Divya Shruthi Anitha Sowmya Bhavya Gowri "
             "Nandini Veena Sahana Spoorthi Rekha Sumathi Pavithra Ananya Tejaswini",
             "Gowda Shetty Rao Hegde Bhat Naik Reddy Murthy Prasad Swamy Patil Joshi Acharya Kamath Pai Shenoy "
             "Iyengar Nayak Kulkarni Urs"),)),
    "mh": (("mr", "mr", "mr", "hi", "en"),
           ("Kothrud", "Karve Nagar", "Erandwane", "Warje", "Bavdhan", "Paud Road", "Deccan Gymkhana"),
           ((1.0, "Sachin Rahul Amol Swapnil Prasad Nilesh Sagar Shubham Aniket Omkar Mangesh Ganesh Vijay Sanjay "
                  "Ajit Tushar Yogesh Rohan",
             "Vaishali Ashwini Snehal Pallavi Priyanka Madhuri Sunita Rohini Tanvi Sakshi Manisha Shraddha Aarti "
             "Vrushali Gauri",
             "Deshpande Kulkarni Joshi Patil Jadhav Pawar Shinde More Gaikwad Chavan Deshmukh Kale Bhosale Sawant "
             "Kadam Salunkhe Apte Gokhale Phadke"),)),
    "tn": (("ta", "ta", "ta", "en"),
           ("Mylapore", "Alwarpet", "Mandaveli", "R A Puram", "Triplicane", "Abhiramapuram", "Santhome"),
           ((1.0, "Murugan Karthik Senthil Saravanan Arun Vignesh Anand Balaji Ganesh Prakash Dinesh Suresh Ramesh "
                  "Rajkumar Sathish Venkatesh",
             "Priya Divya Lakshmi Meena Kavitha Selvi Revathi Ramya Gayathri Deepika Sangeetha Malathi Bhuvana "
             "Padmini Janaki",
             "Iyer Pillai Subramanian Krishnan Raman Natarajan Venkatesan Sundaram Rajendran Murugesan "
             "Chandrasekaran Balasubramanian Srinivasan Ramasamy"),)),
    "ts": (("te", "te", "te", "hi", "en"),
           ("Banjara Hills", "Jubilee Hills", "Ameerpet", "Somajiguda", "Panjagutta", "Khairatabad", "Tolichowki"),
           ((0.7, "Srinivas Venkat Ramesh Naresh Raju Sai Teja Chaitanya Kalyan Mahesh Ravi Praveen Harsha",
             "Lakshmi Padma Swathi Sravani Harika Anusha Bhavani Keerthi Sirisha Madhavi Divya",
             "Reddy Rao Naidu Chowdary Varma Goud Yadav Sharma"),
            (0.3, "Mohammed Syed Abdul Imran Sameer Farhan Irfan Mujeeb Asif",
             "Fatima Ayesha Zainab Sana Nazia Rukhsar Heena Afreen",
             "Khan Ali Hussain Qureshi Siddiqui Ahmed Baig Shaikh"))),
    "dl": (("hi", "hi", "hi", "en"),
           ("Lajpat Nagar II", "Defence Colony", "Jangpura Extension", "Amar Colony", "Kalkaji", "Greater Kailash I",
            "East of Kailash"),
           ((0.8, "Amit Rohit Rajesh Sunil Vikas Deepak Manoj Sanjay Arjun Karan Aarav Vivaan Ishaan Rakesh Naveen",
             "Neha Pooja Anjali Priya Ritu Sonia Aditi Kavya Anaya Sunita Poonam Meenakshi Shalini",
             "Sharma Verma Gupta Aggarwal Malhotra Kapoor Chopra Arora Bansal Mittal Jain Yadav Chauhan Saxena "
             "Srivastava Mehta"),
            (0.2, "Gurpreet Harpreet Manpreet Jaspal Amarjeet Harjeet Kulwant Tejinder",
             "Jaspreet Simran Harleen Manjeet Navneet Gurleen Rajwinder", "Singh"))),
    "kl": (("ml", "ml", "ml", "en"),
           ("Edappally", "Kaloor", "Palarivattom", "Kakkanad", "Vyttila", "Thrikkakara", "Elamakkara"),
           ((0.55, "Arun Anoop Rajeev Sreejith Vishnu Akhil Midhun Hari Sanjay",
             "Anjali Aswathy Lekshmi Divya Reshma Nisha Athira Gopika Sreelakshmi",
             "Nair Menon Pillai Kurup Panicker Nambiar Warrier"),
            (0.25, "Jose Thomas Mathew Joseph Biju Shaji Jijo Tony", "Mary Elizabeth Annamma Jincy Reshmi Teena",
             "Varghese Thomas George Kurian Joseph Abraham Chacko"),
            (0.2, "Mohammed Ashraf Shameer Faisal Nizar", "Fathima Shabna Ramseena Najla",
             "Kutty Haji Koya Thangal"))),
    "wb": (("bn", "bn", "bn", "en", "hi"),
           ("Salt Lake Sector I", "Salt Lake Sector V", "Lake Town", "Bidhannagar", "Kankurgachi", "Baguiati"),
           ((1.0, "Arindam Sourav Debashis Subhajit Anirban Sanjib Partha Soumya Abhijit Tapas Indranil Sudip",
             "Rupa Moumita Sreya Tanushree Priyanka Rina Mitali Sharmistha Payel Ananya Debjani Sumana",
             "Banerjee Chatterjee Mukherjee Das Ghosh Bose Sen Dutta Roy Chakraborty Bhattacharya Saha Mondal "
             "Sarkar"),)),
    "gj": (("gu", "gu", "gu", "hi", "en"),
           ("Navrangpura", "Satellite", "Vastrapur", "Bodakdev", "Paldi", "Maninagar", "Naranpura"),
           ((1.0, "Hardik Chirag Jignesh Ketan Nirav Parth Bhavesh Mehul Dhaval Rakesh Kalpesh Harsh",
             "Hetal Krupa Nisha Pooja Jinal Bhavna Komal Dhara Rina Falguni Khushbu Urvi",
             "Patel Shah Mehta Desai Joshi Parikh Trivedi Pandya Bhatt Modi Thakkar Chauhan"),)),
}
# Communities shared by several regions below (share, male first names, female first names, surnames).
_HINDI_NORTH = (0.8, "Amit Rohit Rajesh Sunil Vikas Deepak Manoj Sanjay Arjun Karan Aarav Vivaan Rakesh Naveen Alok",
                "Neha Pooja Anjali Priya Ritu Sonia Aditi Kavya Sunita Poonam Shalini Rekha Archana Nidhi",
                "Srivastava Tiwari Mishra Pandey Shukla Yadav Verma Gupta Singh Tripathi Dubey Awasthi Saxena")
_URDU_NORTH = (0.2, "Mohammed Imran Faisal Arshad Danish Salman Tariq Naved", "Fatima Ayesha Sana Nazia Rubina Shabana",
               "Khan Ansari Siddiqui Qureshi Rizvi Zaidi Abbasi")
_PUNJABI = ((0.6, "Gurpreet Harpreet Manpreet Jaspal Amarjeet Harjeet Kulwant Tejinder Baljit Sukhwinder",
             "Jaspreet Simran Harleen Manjeet Navneet Gurleen Rajwinder Amandeep", "Singh"),
            (0.4, "Rohit Vikas Ankur Sahil Gaurav Nitin Deepak", "Ritika Neha Shivani Pooja Monika Payal",
             "Arora Malhotra Kapoor Khanna Sethi Bhatia Sharma Mehra"))
_TELUGU = ((1.0, "Srinivas Venkat Ramesh Naresh Raju Sai Teja Chaitanya Kalyan Mahesh Ravi Praveen Harsha Ramana",
            "Lakshmi Padma Swathi Sravani Harika Anusha Bhavani Keerthi Sirisha Madhavi Divya Sailaja",
            "Reddy Rao Naidu Chowdary Varma Raju Murthy Sastry Prasad"),)
_HINDI_CENTRAL = ((1.0, "Rahul Ankit Saurabh Abhishek Pankaj Vivek Manish Ajay Rakesh Mukesh Ramesh Dinesh Hemant",
                   "Priyanka Shweta Neha Ruchi Anita Kiran Sarita Mamta Pooja Swati Jyoti Rashmi",
                   "Sharma Patel Verma Jain Dubey Tiwari Rajput Chouhan Agrawal Joshi Yadav Solanki"),)
_HINDI_EAST = ((1.0, "Rakesh Manoj Sanjeev Ranjit Amit Rohit Abhishek Pankaj Vikash Santosh Dilip Ajit Niraj",
                "Sunita Rinku Priyanka Anjali Puja Kumari Nisha Kiran Archana Shobha Sweta Rani",
                "Kumar Sinha Prasad Jha Mishra Singh Yadav Mahto Thakur Pandey Choudhary Sahu"),)
REGIONS |= {
    "up": (("hi", "hi", "hi", "en"), ("Gomti Nagar", "Hazratganj", "Aliganj", "Indira Nagar", "Mahanagar", "Aminabad"),
           (_HINDI_NORTH, _URDU_NORTH)),
    "rj": (("hi", "hi", "hi", "en"), ("Malviya Nagar", "Vaishali Nagar", "Mansarovar", "C-Scheme", "Raja Park"),
           ((1.0, "Mahendra Surendra Vikram Rajendra Ashok Naresh Lokesh Kuldeep Bharat Manish Hemant",
             "Sunita Kavita Manju Suman Rekha Meena Pooja Anita Kiran Payal Hemlata",
             "Sharma Agarwal Jain Rathore Shekhawat Meena Choudhary Joshi Purohit Saini Goyal"),)),
    "pb": (("hi", "hi", "en", "en"), ("Sarabha Nagar", "Model Town", "BRS Nagar", "Civil Lines", "Dugri",
     "Pakhowal Road"),
           _PUNJABI),
    "ch": (("hi", "hi", "en", "en"), ("Sector 15", "Sector 22", "Sector 35", "Sector 44", "Manimajra", "Sector 8"),
           _PUNJABI),
    "hr": (("hi", "hi", "en", "en"), ("DLF Phase 3", "Sushant Lok", "Sector 14", "Palam Vihar", "South City 1"),
           ((1.0, "Rohit Sandeep Vikas Naveen Parveen Ravinder Sunil Ajay Deepak Manoj Amit Kapil",
             "Sunita Pooja Neha Kavita Monika Poonam Preeti Rekha Anju Seema",
             "Yadav Sharma Chauhan Malik Dahiya Hooda Gupta Aggarwal Singla Rao"),)),
    "ap": (("te", "te", "te", "en"), ("Benz Circle", "Labbipet", "Governorpet", "Patamata", "Moghalrajpuram"), _TELUGU),
    "vz": (("te", "te", "te", "en"), ("Dwaraka Nagar", "MVP Colony", "Seethammadhara", "Gajuwaka", "Madhurawada"),
           _TELUGU),
    "mp": (("hi", "hi", "hi", "en"), ("Vijay Nagar", "Palasia", "Rajendra Nagar", "Saket Nagar", "Sudama Nagar"),
           _HINDI_CENTRAL),
    "bp": (("hi", "hi", "hi", "en"), ("Arera Colony", "MP Nagar", "Kolar Road", "Shahpura", "Habibganj"),
           _HINDI_CENTRAL),
    "cg": (("hi", "hi", "hi", "en"), ("Shankar Nagar", "Pandri", "Tatibandh", "Devendra Nagar", "Telibandha"),
           _HINDI_CENTRAL),
    "br": (("hi", "hi", "hi", "en"), ("Kankarbagh", "Boring Road", "Rajendra Nagar", "Patliputra Colony",
     "Bailey Road"),
           _HINDI_EAST),
    "jh": (("hi", "hi", "hi", "en"), ("Lalpur", "Morabadi", "Harmu", "Kanke Road", "Doranda"), _HINDI_EAST),
    "uk": (("hi", "hi", "hi", "en"), ("Rajpur Road", "Vasant Vihar", "Dalanwala", "Prem Nagar", "Clement Town"),
           (_HINDI_NORTH,)),
    "od": (("hi", "en", "en"), ("Saheed Nagar", "Nayapalli", "Patia", "Khandagiri", "Old Town", "Jaydev Vihar"),
           ((1.0, "Debasis Subrat Prasanta Sanjay Manas Biswajit Ashok Pradeep Rabindra Sisir Bikash Sudhansu",
             "Sasmita Pragyan Lipsa Mamata Sujata Snigdha Itishree Bandana Smruti Rashmita",
             "Mohanty Patnaik Das Sahoo Mishra Panda Nayak Behera Swain Jena Rath Pradhan"),)),
    "as": (("bn", "hi", "en", "en"), ("Ganeshguri", "Zoo Road", "Beltola", "Chandmari", "Uzan Bazar", "Dispur"),
           ((1.0, "Bhaskar Pranjal Dhruba Rupam Hemanta Dipankar Jayanta Nilutpal Bikash Manash Partha",
             "Jonali Dipanjali Pallabi Bornali Rashmi Priyanka Chayanika Mousumi Rupjyoti Nilakshi",
             "Baruah Bora Gogoi Saikia Hazarika Kalita Deka Sarma Phukan Talukdar Das"),)),
    "ga": (("en", "en", "mr", "hi"), ("Altinho", "Miramar", "Porvorim", "Taleigao", "Caranzalem", "Panaji"),
           ((0.6, "Rohan Sanjay Ashish Nikhil Gaurav Prashant Vishal Siddhesh Amey",
             "Sneha Pooja Shilpa Ankita Sonali Prajakta Rutuja Neha",
             "Naik Kamat Prabhu Shet Gaonkar Sawant Desai Parab Kerkar Borkar"),
            (0.4, "Joseph Anthony Francis Savio Agnelo Cajetan Lester", "Maria Lavina Sharon Natasha Fiona Velina",
             "Fernandes Rodrigues Pereira Gomes Dias Colaco Menezes"))),
    "py": (("ta", "ta", "ta", "en"), ("White Town", "Lawspet", "Mudaliarpet", "Reddiarpalayam", "Muthialpet"),
           REGIONS["tn"][2]),
    "my": (("kn", "kn", "kn", "en"), ("Saraswathipuram", "Kuvempunagar", "Vijayanagar 2nd Stage", "Jayalakshmipuram"),
           REGIONS["ka"][2]),
    "mb": (("mr", "mr", "hi", "hi", "en", "gu"), ("Dadar West", "Andheri East", "Borivali West", "Chembur",
     "Thane West",
                                                 "Vashi", "Mulund West", "Ghatkopar East"), REGIONS["mh"][2]),
    "cb": (("ta", "ta", "ta", "en", "ml"), ("RS Puram", "Gandhipuram", "Saibaba Colony", "Peelamedu", "Race Course"),
           REGIONS["tn"][2]),
    "tv": (("ml", "ml", "ml", "en"), ("Pattom", "Vazhuthacaud", "Kowdiar", "Sasthamangalam", "Peroorkada"),
           REGIONS["kl"][2]),
    "sr": (("gu", "gu", "gu", "hi", "en"), ("Adajan", "Vesu", "Athwa Lines", "Piplod", "Varachha"), REGIONS["gj"][2]),
}
STREETS = ("{n}, {m}th Cross, {loc}", "{n}/{m}, {loc} Main Road", "Flat {m}0{d}, Sai Residency, {loc}",
           "No. {n}, {m}th Main, {loc}", "{n}, Near Post Office, {loc}", "H.No. {n}-{m}, {loc}")
MAIL_HOSTS = ("gmail.com", "gmail.com", "gmail.com", "yahoo.co.in", "rediffmail.com", "outlook.com")
MOBILE_STARTS = ("98", "99", "97", "96", "94", "93", "91", "90", "89", "88", "87", "85", "81", "80", "79", "78",
                 "77", "76", "75", "74", "73", "72", "70", "63", "62")


@dataclass(frozen=True)
class Place:
    region: str
    city: str
    pin_prefix: str
    state_code: str


def seeded(*parts) -> random.Random:
    """A generator seeded by the parts (the bench seed, what is being made, which piece): the same data
    whatever the number of worker processes."""
    return random.Random("|".join(map(str, parts)))  # noqa: S311 (made-up data, nothing secret)


def mobile(rng: random.Random) -> str:
    """A valid Indian mobile number in E.164."""
    while True:
        number = f"+91{rng.choice(MOBILE_STARTS)}{rng.randrange(10**8):08d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


def _abha(rng: random.Random) -> str:
    digits = f"{rng.randrange(10**13, 10**14)}"
    return f"{digits[:2]}-{digits[2:6]}-{digits[6:10]}-{digits[10:]}"


def _community(rng: random.Random, region: str) -> tuple[list[str], list[str], list[str]]:
    communities = REGIONS[region][2]
    _, males, females, surnames = rng.choices(communities, weights=[c[0] for c in communities])[0]
    return males.split(), females.split(), surnames.split()


def _ages(rng: random.Random) -> list[tuple[str, int]]:
    """(sex, age) of a household's members: a single adult, a couple, parents and children, or elders."""
    shape = rng.choices(("single", "couple", "family", "elders"), weights=(30, 20, 40, 10))[0]
    first = "M" if rng.random() < 0.5 else "F"
    other = "F" if first == "M" else "M"
    if shape == "single":
        people = [(first, rng.randint(18, 80))]
    elif shape == "couple":
        age = rng.randint(22, 75)
        people = [(first, age), (other, max(19, age + rng.randint(-6, 6)))]
    elif shape == "family":
        age = rng.randint(25, 52)
        people = [(first, age), (other, max(21, age + rng.randint(-6, 6)))]
        people += [("M" if rng.random() < 0.5 else "F", rng.randint(0, min(17, age - 21)))
                   for _ in range(rng.randint(1, 3))]
    else:
        people = []
    if shape == "elders" or (shape == "family" and rng.random() < 0.15):
        age = rng.randint(max(60, people[0][1] + 22 if people else 60), 88)
        people += [("M", age), ("F", max(58, age - rng.randint(0, 6)))][:rng.randint(1, 2)]
    return people


def household(rng: random.Random, place: Place, today: date) -> list[PatientData]:
    """One family registering together on `today`: 1 to 6 people sharing the family mobile, children
    with a parent as guardian, elders whose date of birth is often only a year."""
    males, females, surnames = _community(rng, place.region)
    languages, localities, _ = REGIONS[place.region]
    surname, phone, language = rng.choice(surnames), mobile(rng), rng.choice(languages)
    address = rng.choice(STREETS).format(n=rng.randint(1, 480), m=rng.randint(1, 18), d=rng.randint(1, 9),
                                       loc=rng.choice(localities))
    pin = f"{place.pin_prefix}{rng.randint(1, 99):02d}"
    guardian, out = None, []
    for sex, age in _ages(rng):
        first = rng.choice(males if sex == "M" else females)
        family = "Kaur" if surname == "Singh" and sex == "F" else surname
        name = f"{first} {family}" if rng.random() < 0.85 else f"{first} {rng.choice(males)} {family}"
        adult = age >= 18
        guardian = guardian or (name if adult else None)
        estimated = age >= 60 and rng.random() < 0.35
        dob = today - timedelta(days=age * 365 + rng.randint(0, 364))
        out.append(PatientData(
            full_name=name, sex=sex, dob=date(dob.year, 1, 1) if estimated else dob, dob_estimated=estimated,
            phone=phone, alt_phone=mobile(rng) if adult and rng.random() < 0.12 else None,
            email=f"{first}.{family}{rng.randint(1, 999)}@{rng.choice(MAIL_HOSTS)}".lower()
            if adult and rng.random() < 0.3 else None,
            address_line=address, city=place.city, pin_code=pin, state_code=place.state_code, language=language,
            abha_number=_abha(rng) if rng.random() < 0.22 else None,
            guardian_name=None if adult else guardian, guardian_relation=None if adult else "Parent",
            guardian_phone=None if adult else phone))
    return out


def staff_name(rng: random.Random, region: str, *, doctor: bool) -> tuple[str, str]:
    """A staff member's (name, sex); doctors are 'Dr. ...'."""
    males, females, surnames = _community(rng, region)
    sex = "M" if rng.random() < 0.5 else "F"
    name = f"{rng.choice(males if sex == 'M' else females)} {rng.choice(surnames)}"
    return (f"Dr. {name}" if doctor else name), sex
